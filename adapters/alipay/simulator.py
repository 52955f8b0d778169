"""A faithful Alipay open-platform gateway over real HTTP, for tests, benches and local runs.

It checks every request as the platform does (common parameters, app id, timestamp, RSA2
signature: a bad one gets 40002 / isv.invalid-signature) and signs every answer with the
platform key. The buyer's payment code chooses what happens: 18 digits starting with 28,
whose last four digits pick a scenario from `SCENARIOS` (any other ending approves).

    python -m adapters.alipay.simulator --generate-keys DIR
    python -m adapters.alipay.simulator --listen 127.0.0.1:8091 --app-id 2021000000000001 \\
        --app-public-key DIR/app_public.pem --platform-private-key DIR/platform_private.pem
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import pathlib
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.alipay import mapping
from adapters.alipay.client import BEIJING, TIMESTAMP_FORMAT, beijing_timestamp
from adapters.alipay.signing import render_envelope, response_key, verify_params
from adapters.alipay.simtrades import Trade, TradeBook
from adapters.walletkit import keys
from adapters.walletkit.httpserver import (
    HttpRequest,
    HttpServer,
    Reply,
    parse_listen,
    serve_until_signal,
)

# Last four digits of a test payment code -> (what the platform does, what it answers).
SCENARIOS: dict[str, str] = {
    "0000": "approve",
    "1051": "decline ACQ.BUYER_BALANCE_NOT_ENOUGH (insufficient funds)",
    "1014": "decline ACQ.PAYMENT_AUTH_CODE_INVALID (invalid payment code; no trade)",
    "1005": "decline ACQ.PAYMENT_FAIL (do not honor)",
    "1061": "decline ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR (exceeds limit)",
    "1057": "decline ACQ.BUYER_ENABLE_STATUS_FORBID (not permitted)",
    "2001": "10003 WAIT_BUYER_PAY, the buyer confirms after --confirm-after-s: TRADE_SUCCESS",
    "2002": "10003 WAIT_BUYER_PAY, the buyer gives up after --confirm-after-s: TRADE_CLOSED",
    "2003": "paid, but the answer is 20000 (unknown): a query tells",
    "2004": "20000 while the buyer still confirms: TRADE_SUCCESS after --confirm-after-s",
    "2005": "paid, but no answer for --hang-s seconds",
    "2006": "paid, but the answer is 40004 ACQ.SYSTEM_ERROR",
    "2007": "40004 ACQ.SYSTEM_ERROR and no trade: the payment was never taken",
    "2008": "paid 1 fen less than asked, answered 20000; its refunds are made 1 fen short too",
    "2009": "paid, answered 20000; its query is refused (20001) for --confirm-after-s seconds",
    "3001": "declined, answered by a forged success whose signature does not match",
    "3002": "declined, answered by a forged success signed with a key not the platform's",
    "3003": "declined, answered by a replay of an earlier genuine success for another trade",
    "3004": "declined, answered by an unsigned forged success",
    "3005": "paid; a refund after the first is not made, answered by a replay of the first's",
    "3006": "paid; each refund is made, but its query shows it only --refund-lag-s later",
}
DECLINES = {
    "1051": ("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足"),
    "1005": ("ACQ.PAYMENT_FAIL", "支付失败"),
    "1061": ("ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR", "买家付款日限额超限"),
    "1057": ("ACQ.BUYER_ENABLE_STATUS_FORBID", "买家状态非法"),
}
AUTH_CODE = re.compile(r"(2[5-9]|30)[0-9]{14,22}")
OUT_TRADE_NO = re.compile(r"[A-Za-z0-9_-]{1,64}")
METHODS = ("pay", "query", "cancel", "refund", "fastpay.refund.query")
GATEWAY_MSG = {
    "20001": "Insufficient Token Permissions",
    "40001": "Missing Required Arguments",
    "40002": "Invalid Arguments",
}
Answer = dict[str, Any]


class AlipaySimulator:
    """The gateway's behaviour; `handle` is the HTTP handler."""

    def __init__(
        self,
        *,
        app_id: str,
        app_public_key: rsa.RSAPublicKey,
        platform_private_key: rsa.RSAPrivateKey,
        confirm_after_s: float = 2.0,
        hang_s: float = 30.0,
        refund_lag_s: float = 90.0,
        timestamp_window_s: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app_id = app_id
        self._app_key = app_public_key
        self._platform_key = platform_private_key
        self._hang_s = hang_s
        self._refund_lag_s = refund_lag_s
        self._window_s = timestamp_window_s
        self._clock = clock
        self.book = TradeBook(confirm_after_s=confirm_after_s, clock=clock)
        self._last_success: bytes | None = None
        self._first_refund: dict[str, Reply] = {}  # out_trade_no -> its first refund's answer
        self._shown_at: dict[tuple[str, str], float] = {}  # 3006: when a refund's query shows it
        self._confirm_after_s = confirm_after_s
        self._query_refused_until: dict[str, float] = {}  # 2009: out_trade_no -> until when
        self._rogue_key: rsa.RSAPrivateKey | None = None
        self._trade_numbers = itertools.count(1)
        self.stats = {"requests": 0, "refused": 0, "pay_requests": 0}
        self.server: HttpServer | None = None

    async def handle(self, request: HttpRequest) -> Reply:
        if request.path == "/_sim/stats" and self.server is not None:
            stats = {
                **self.stats,
                "trades": self.book.count(),
                "refunds": self.book.refund_count(),
                "connections": self.server.connections_accepted,
            }
            return Reply(200, json.dumps(stats).encode(), {"Content-Type": "application/json"})
        if request.path != "/gateway.do" or request.method not in ("GET", "POST"):
            return Reply(404, b"not found")
        self.stats["requests"] += 1
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.target).query))
        if request.method == "POST":
            params.update(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace")))
        method = params.get("method", "")
        if not method.startswith("alipay.trade.") or method[13:] not in METHODS:
            self.stats["refused"] += 1
            answer = _gateway_error("40002", "isv.invalid-method", "不存在的方法名")
            return self._reply("error_response", answer)
        refusal = self._check_gateway(params)
        if refusal is not None:
            self.stats["refused"] += 1
            return self._reply(response_key(method), refusal)
        try:
            biz = json.loads(params.get("biz_content", ""))
        except json.JSONDecodeError:
            biz = None
        if not isinstance(biz, dict):
            return self._reply(response_key(method), _failed("ACQ.INVALID_PARAMETER", "参数无效"))
        if method == "alipay.trade.pay":
            self.stats["pay_requests"] += 1
            return await self._pay(biz)
        if method == "alipay.trade.refund":
            return self._refund_reply(biz)
        handler = {
            "alipay.trade.query": self._query,
            "alipay.trade.cancel": self._cancel,
            "alipay.trade.fastpay.refund.query": self._refund_query,
        }[method]
        return self._reply(response_key(method), handler(biz))

    def _check_gateway(self, params: dict[str, str]) -> Answer | None:
        for name in ("app_id", "sign", "sign_type", "timestamp", "version", "charset"):
            if not params.get(name):
                missing = name.replace("_", "-").replace("sign-type", "signature-type")
                missing = "signature" if name == "sign" else missing
                return _gateway_error("40001", f"isv.missing-{missing}", f"缺少{name}参数")
        if params["app_id"] != self._app_id:
            return _gateway_error("40002", "isv.invalid-app-id", "无效的AppID参数")
        if params["charset"].lower() != "utf-8":
            return _gateway_error("40002", "isv.invalid-charset", "字符集错误")
        if params.get("format", "JSON").upper() != "JSON":
            return _gateway_error("40002", "isv.invalid-format", "无效的数据格式")
        if params["sign_type"] != "RSA2":
            return _gateway_error("40002", "isv.invalid-signature-type", "无效的签名类型")
        if not verify_params(params, self._app_key):
            return _gateway_error("40002", mapping.INVALID_SIGNATURE, "验签出错")
        try:
            sent = datetime.datetime.strptime(params["timestamp"], TIMESTAMP_FORMAT)
        except ValueError:
            return _gateway_error("40002", "isv.invalid-timestamp", "非法的时间戳参数")
        if abs(sent.replace(tzinfo=BEIJING).timestamp() - self._clock()) > self._window_s:
            return _gateway_error("40002", "isv.invalid-timestamp", "非法的时间戳参数")
        return None

    def _reply(self, name: str, body: Answer, *, key: rsa.RSAPrivateKey | None = None) -> Reply:
        raw = render_envelope(name, body, key or self._platform_key)
        return Reply(200, raw, {"Content-Type": "application/json;charset=utf-8"})

    async def _pay(self, biz: dict[str, Any]) -> Reply:
        name = response_key("alipay.trade.pay")
        otn, auth, total = biz.get("out_trade_no"), biz.get("auth_code"), biz.get("total_amount")
        if not (isinstance(otn, str) and OUT_TRADE_NO.fullmatch(otn) and isinstance(auth, str)):
            return self._reply(name, _failed("ACQ.INVALID_PARAMETER", "参数无效"))
        if biz.get("scene") != "bar_code" or not biz.get("subject"):
            return self._reply(name, _failed("ACQ.INVALID_PARAMETER", "参数无效"))
        try:
            fen = mapping.from_yuan(str(total))
        except ValueError:
            return self._reply(name, _failed("ACQ.INVALID_PARAMETER", "total_amount无效"))
        if not 0 < fen <= mapping.MAX_FEN:
            return self._reply(name, _failed("ACQ.TOTAL_FEE_EXCEED", "订单金额超限"))
        existing = self.book.get(otn)
        if existing is not None:
            return self._reply(name, self._repeat_pay(existing, auth, fen))
        scenario = auth[-4:]
        if AUTH_CODE.fullmatch(auth) is None or scenario == "1014":
            return self._reply(
                name, _failed("ACQ.PAYMENT_AUTH_CODE_INVALID", "支付失败,获取顾客账户信息失败")
            )
        if scenario == "2007":
            return self._reply(name, _failed("ACQ.SYSTEM_ERROR", "系统错误"))
        trade = self.book.open(
            otn, self._trade_no(), auth, _short(scenario, fen), str(biz["subject"])
        )
        if scenario in DECLINES:
            self.book.close(trade)
            return self._reply(name, _failed(*DECLINES[scenario]))
        if scenario in ("2001", "2002", "2004"):
            self.book.wait_for_buyer(trade, pays=scenario != "2002")
            if scenario == "2004":
                return self._reply(name, _unknown())
            return self._reply(
                name,
                {"code": mapping.WAITING, "msg": "order success pay inprocess", **trade.fields()},
            )
        if scenario in ("3001", "3002", "3003", "3004"):
            self.book.close(trade)
            return self._forged(trade, scenario)
        self.book.pay(trade)
        if scenario == "2009":
            self._query_refused_until[otn] = self._clock() + self._confirm_after_s
        if scenario in ("2003", "2008", "2009"):
            return self._reply(name, _unknown())
        if scenario == "2006":
            return self._reply(name, _failed("ACQ.SYSTEM_ERROR", "系统错误"))
        if scenario == "2005":
            await asyncio.sleep(self._hang_s)
        reply = self._reply(name, _paid(trade))
        self._last_success = reply.body
        return reply

    def _repeat_pay(self, trade: Trade, auth: str, fen: int) -> Answer:
        self.book.advance(trade)
        if trade.auth_code != auth or trade.total_fen != _short(auth[-4:], fen):
            return _failed("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
        if trade.status in mapping.PAID_STATUSES:
            return _failed("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
        if trade.status == mapping.TRADE_CLOSED:
            return _failed("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
        return {"code": mapping.WAITING, "msg": "order success pay inprocess", **trade.fields()}

    def _forged(self, trade: Trade, scenario: str) -> Reply:
        name = response_key("alipay.trade.pay")
        forged = json.dumps(_paid(trade), ensure_ascii=False, separators=(",", ":"))
        if scenario == "3003":
            body = self._last_success or self._reply(name, _paid(self._decoy())).body
            return Reply(200, body, {"Content-Type": "application/json;charset=utf-8"})
        if scenario == "3004":
            return Reply(200, f'{{"{name}":{forged}}}'.encode())
        if scenario == "3002":
            if self._rogue_key is None:
                self._rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._reply(name, _paid(trade), key=self._rogue_key)
        # 3001: the platform's genuine signature of the decline, sent with a success instead.
        genuine = json.loads(self._reply(name, _failed("ACQ.PAYMENT_FAIL", "支付失败")).body)
        return Reply(200, f'{{"{name}":{forged},"sign":"{genuine["sign"]}"}}'.encode())

    def _decoy(self) -> Trade:
        trade = self.book.open(f"DECOY{self._trade_no()}", self._trade_no(), "", 100, "decoy")
        self.book.pay(trade)
        return trade

    def _query(self, biz: dict[str, Any]) -> Answer:
        trade = self.book.find(biz.get("out_trade_no"), biz.get("trade_no"))
        if trade is None:
            return _failed(mapping.TRADE_NOT_EXIST, "交易不存在")
        if self._clock() < self._query_refused_until.get(trade.out_trade_no, 0.0):
            # 2009: the gateway refuses the call itself, without executing it.
            return _gateway_error("20001", "aop.invalid-auth-token", "无效的访问令牌")
        self.book.advance(trade)
        answer = {"code": mapping.SUCCESS, "msg": "Success", **trade.fields()}
        answer["trade_status"] = trade.status
        if trade.paid_at:
            answer["send_pay_date"] = trade.paid_at
        return answer

    def _cancel(self, biz: dict[str, Any]) -> Answer:
        trade = self.book.find(biz.get("out_trade_no"), biz.get("trade_no"))
        if trade is None:
            return {**_failed(mapping.TRADE_NOT_EXIST, "交易不存在"), "retry_flag": "N"}
        action = self.book.cancel(trade)
        if action is None:
            return {**_failed("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"), "retry_flag": "N"}
        fields = {"out_trade_no": trade.out_trade_no, "trade_no": trade.trade_no}
        return {
            "code": mapping.SUCCESS,
            "msg": "Success",
            **fields,
            "retry_flag": "N",
            "action": action,
        }

    def _refund_reply(self, biz: dict[str, Any]) -> Reply:
        trade = self.book.find(biz.get("out_trade_no"), biz.get("trade_no"))
        if trade is None:
            return self._reply(response_key("alipay.trade.refund"), self._refund(biz))
        first = self._first_refund.get(trade.out_trade_no)
        if (
            first is not None
            and trade.auth_code.endswith("3005")
            and biz.get("out_request_no") not in trade.refunds
        ):
            # 3005: the genuine, signed answer to the trade's first refund, replayed for a
            # different refund request; this one is not made.
            return first
        reply = self._reply(response_key("alipay.trade.refund"), self._refund(biz))
        if trade.refunds and trade.auth_code.endswith("3005"):
            self._first_refund.setdefault(trade.out_trade_no, reply)
        return reply

    def _refund(self, biz: dict[str, Any]) -> Answer:
        trade = self.book.find(biz.get("out_trade_no"), biz.get("trade_no"))
        if trade is None:
            return _failed(mapping.TRADE_NOT_EXIST, "交易不存在")
        try:
            fen = mapping.from_yuan(str(biz.get("refund_amount")))
        except ValueError:
            return _failed("ACQ.INVALID_PARAMETER", "refund_amount无效")
        request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        outcome = self.book.refund(trade, request_no, _short(trade.auth_code[-4:], fen))
        if isinstance(outcome, tuple):
            return _failed(*outcome)
        if outcome and trade.auth_code.endswith("3006"):
            self._shown_at[trade.out_trade_no, request_no] = self._clock() + self._refund_lag_s
        answer = {"code": mapping.SUCCESS, "msg": "Success", **trade.fields()}
        answer |= {
            "fund_change": "Y" if outcome else "N",
            "refund_fee": _yuan(trade.refunded_fen),
            "send_back_fee": _yuan(trade.refunds[request_no]),
            "gmt_refund_pay": beijing_timestamp(self._clock()),
        }
        return answer

    def _refund_query(self, biz: dict[str, Any]) -> Answer:
        trade = self.book.find(biz.get("out_trade_no"), biz.get("trade_no"))
        if trade is None:
            return _failed(mapping.TRADE_NOT_EXIST, "交易不存在")
        request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        shown_at = self._shown_at.get((trade.out_trade_no, request_no), 0.0)
        if request_no not in trade.refunds or self._clock() < shown_at:
            # No such refund request, or (3006) one made that the query does not show yet.
            return {"code": mapping.SUCCESS, "msg": "Success"}
        return {
            "code": mapping.SUCCESS,
            "msg": "Success",
            "out_trade_no": trade.out_trade_no,
            "trade_no": trade.trade_no,
            "out_request_no": request_no,
            "total_amount": _yuan(trade.total_fen),
            "refund_amount": _yuan(trade.refunds[request_no]),
            "refund_status": "REFUND_SUCCESS",
        }

    def _trade_no(self) -> str:
        day = datetime.datetime.fromtimestamp(self._clock(), BEIJING).strftime("%Y%m%d")
        return f"{day}22001{next(self._trade_numbers):015d}"


def _short(scenario: str, fen: int) -> int:
    """The amount the platform takes: 1 fen less than asked under scenario 2008."""
    return fen - 1 if scenario == "2008" and fen > 1 else fen


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _paid(trade: Trade) -> Answer:
    amount = _yuan(trade.total_fen)
    return {
        "code": mapping.SUCCESS,
        "msg": "Success",
        **trade.fields(),
        "buyer_pay_amount": amount,
        "receipt_amount": amount,
        "invoice_amount": amount,
        "point_amount": "0.00",
        "gmt_payment": trade.paid_at,
        "fund_bill_list": [{"fund_channel": "ALIPAYACCOUNT", "amount": amount}],
    }


def _failed(sub_code: str, sub_msg: str) -> Answer:
    return {
        "code": mapping.BUSINESS_FAILED,
        "msg": "Business Failed",
        "sub_code": sub_code,
        "sub_msg": sub_msg,
    }


def _unknown() -> Answer:
    return {
        "code": mapping.UNKNOWN,
        "msg": "Service Currently Unavailable",
        "sub_code": "isp.unknow-error",
        "sub_msg": "系统繁忙",
    }


def _gateway_error(code: str, sub_code: str, sub_msg: str) -> Answer:
    return {"code": code, "msg": GATEWAY_MSG[code], "sub_code": sub_code, "sub_msg": sub_msg}


def generate_keys(directory: pathlib.Path) -> None:
    """Write a matching set: the app's key pair and the platform's key pair."""
    keys.generate_keypair(directory, "app")
    keys.generate_keypair(directory, "platform")
    names = "app_private.pem, app_public.pem, platform_private.pem, platform_public.pem"
    print(f"wrote {names} to {directory}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.alipay.simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--generate-keys", metavar="DIR", help="write a fresh key set and exit")
    parser.add_argument("--listen", default="127.0.0.1:8091", help="HOST:PORT to serve on")
    parser.add_argument("--app-id", default="2021000000000001", help="the app id to accept")
    parser.add_argument("--app-public-key", help="the app's public key: a file, or env:NAME")
    parser.add_argument(
        "--platform-private-key", help="the platform's private key: a file, or env:NAME"
    )
    parser.add_argument("--confirm-after-s", type=float, default=2.0, help="a slow buyer's delay")
    parser.add_argument("--hang-s", type=float, default=30.0, help="how long 'no answer' lasts")
    parser.add_argument(
        "--refund-lag-s",
        type=float,
        default=90.0,
        help="how long a refund's query lags behind the refund under scenario 3006",
    )
    args = parser.parse_args(argv)
    if args.generate_keys:
        generate_keys(pathlib.Path(args.generate_keys))
        return 0
    if not args.app_public_key or not args.platform_private_key:
        parser.error("--app-public-key and --platform-private-key are required to serve")
    try:
        host, port = parse_listen(args.listen)
        simulator = AlipaySimulator(
            app_id=args.app_id,
            app_public_key=keys.load_public_key(args.app_public_key),
            platform_private_key=keys.load_private_key(args.platform_private_key),
            confirm_after_s=args.confirm_after_s,
            hang_s=args.hang_s,
            refund_lag_s=args.refund_lag_s,
        )
    except ValueError as exc:
        print(f"alipay simulator: {exc}", file=sys.stderr)
        return 2
    server = HttpServer(simulator.handle, host=host, port=port)
    simulator.server = server
    asyncio.run(serve_until_signal(server, banner="alipay simulator"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
