"""A faithful WeChat Pay API v3 platform over real HTTP, for tests, benches and local runs.

It checks every request's `WECHATPAY2-SHA256-RSA2048` Authorization (merchant id, key serial,
time within 300 s, signature; a bad one gets 401 SIGN_ERROR), signs every answer with the
platform key, and posts encrypted, signed notifications to the order's `notify_url`,
repeating them until acknowledged. The buyer's payment code chooses what happens: 18 digits
starting with 13, whose last four digits pick a scenario from `SCENARIOS` (else: approve).

    python -m adapters.wechat.simulator --generate-keys DIR
    python -m adapters.wechat.simulator --listen 127.0.0.1:8092 --mchid 1900000109 \\
        --appid wxd678efh567hg6787 --merchant-public-key DIR/merchant_public.pem \\
        --platform-private-key DIR/platform_private.pem --apiv3-key DIR/apiv3.key
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.walletkit import keys
from adapters.walletkit.httpserver import (
    HttpRequest,
    HttpServer,
    Reply,
    parse_listen,
    serve_until_signal,
)
from adapters.wechat import mapping
from adapters.wechat.signing import (
    APIV3_KEY_BYTES,
    MAX_SKEW_S,
    NonceMemory,
    parse_authorization,
    request_message,
    signed_headers,
)
from adapters.wechat.simnotify import TAMPERS, Notifier
from adapters.wechat.simorders import Order, OrderBook, refund_view, transaction_view

SCENARIOS: dict[str, str] = {
    "0000": "approve (and notify TRANSACTION.SUCCESS)",
    "1051": "decline 403 NOTENOUGH (insufficient funds)",
    "1014": "decline 400 AUTH_CODE_INVALID (invalid payment code; no order)",
    "1005": "decline 403 TRADE_ERROR (do not honor)",
    "1061": "decline 403 RULE_LIMIT (exceeds limit)",
    "1057": "decline 403 NOTSUPORTCARD (not permitted)",
    "2001": "202 USERPAYING; the buyer pays after --confirm-after-s (and it is notified)",
    "2002": "202 USERPAYING; the buyer fails after --confirm-after-s: PAYERROR",
    "2003": "paid (and notified), but the answer is 500 SYSTEM_ERROR: a query tells",
    "2005": "paid (and notified), but no answer for --hang-s seconds",
    "2008": "paid 1 fen less than asked (and notified), answer 500 SYSTEM_ERROR; refunds 1 short",
    "2009": "paid (and notified), answer 500 SYSTEM_ERROR; its query is refused (403 "
    "NO_AUTH_MCH) for --confirm-after-s seconds",
    "3001": "declined, answered by a forged success whose signature does not match",
    "3002": "declined, answered by a forged success signed with a key not the platform's",
    "3003": "declined, answered by a replay of an earlier genuine success (other order)",
    "3004": "declined, answered by a genuinely signed success 400 s old (stale)",
    "3005": "declined, answered by an unsigned 200 success",
}
DECLINES = {
    "1051": (403, "NOTENOUGH", "用户余额不足"),
    "1005": (403, "TRADE_ERROR", "交易错误"),
    "1061": (403, "RULE_LIMIT", "交易金额或次数超出限制"),
    "1057": (403, "NOTSUPORTCARD", "不支持卡类型"),
}
AUTH_CODE = re.compile(r"1[0-5][0-9]{16}")
OUT_NO = re.compile(r"[A-Za-z0-9_*-]{6,32}")
OUT_REFUND_NO = re.compile(r"[A-Za-z0-9_*|@-]{1,64}")
BY_NO = re.compile(r"/v3/pay/transactions/out-trade-no/([^/?]+)(/close|/reverse)?")
REFUND_BY_NO = re.compile(r"/v3/refund/domestic/refunds/([^/?]+)")
REDELIVER = re.compile(r"/_sim/notifications/([^/?]+)/redeliver")
JSON_HEADERS = {"Content-Type": "application/json"}


class WechatPaySimulator:
    """The platform's behaviour; `handle` is the HTTP handler."""

    def __init__(
        self,
        *,
        mchid: str,
        appid: str,
        merchant_public_key: rsa.RSAPublicKey,
        platform_private_key: rsa.RSAPrivateKey,
        apiv3_key: bytes,
        confirm_after_s: float = 2.0,
        hang_s: float = 30.0,
        refund_after_s: float = 0.0,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 5.0, 10.0),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._mchid = mchid
        self._appid = appid
        self._merchant_key = merchant_public_key
        self._merchant_serial = keys.key_serial(merchant_public_key)
        self._key = platform_private_key
        self._serial = keys.key_serial(platform_private_key.public_key())
        self._confirm_after_s = confirm_after_s
        self._hang_s = hang_s
        self._refund_after_s = refund_after_s
        self._clock = clock
        self._nonces = NonceMemory()
        self.book = OrderBook(clock)
        self.notifier = Notifier(
            platform_key=platform_private_key,
            platform_serial=self._serial,
            apiv3_key=apiv3_key,
            retry_delays=retry_delays,
            clock=clock,
        )
        self._last_success: Reply | None = None
        self._query_refused_until: dict[str, float] = {}  # 2009: out_trade_no -> until when
        self._rogue: rsa.RSAPrivateKey | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self.stats = {"requests": 0, "refused": 0, "pay_requests": 0}
        self.server: HttpServer | None = None

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        await self.notifier.close()

    async def handle(self, request: HttpRequest) -> Reply:
        if request.path.startswith("/_sim/"):
            return await self._control(request)
        self.stats["requests"] += 1
        refusal = self._check_signature(request)
        if refusal is not None:
            self.stats["refused"] += 1
            return self._error(401, "SIGN_ERROR", refusal)
        payload: dict[str, Any] = {}
        if request.method == "POST":
            try:
                payload = json.loads(request.body)
            except ValueError:
                payload = {}
            if not isinstance(payload, dict) or not payload:
                return self._error(400, "PARAM_ERROR", "请求体不是合法的JSON对象")
            if payload.get("mchid", self._mchid) != self._mchid:
                return self._error(400, "PARAM_ERROR", "mchid与请求方不一致")
            if payload.get("appid", self._appid) != self._appid:
                return self._error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        path, method = request.path, request.method
        if method == "POST" and path == "/v3/pay/transactions/codepay":
            self.stats["pay_requests"] += 1
            return await self._codepay(payload)
        if method == "POST" and path == "/v3/refund/domestic/refunds":
            return self._refund(payload)
        if (match := BY_NO.fullmatch(path)) is not None:
            order = self.book.get(match.group(1))
            if order is None:
                return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
            action = match.group(2)
            if method == "GET" and action is None:
                if request.query.get("mchid") != self._mchid:
                    return self._error(400, "PARAM_ERROR", "缺少或错误的mchid")
                if self._clock() < self._query_refused_until.get(order.out_trade_no, 0.0):
                    # 2009: the account is refused outright; the query is not executed.
                    return self._error(403, "NO_AUTH_MCH", "商户无权限")
                return self._reply(200, transaction_view(order))
            if method == "POST" and action == "/reverse":
                error = self.book.reverse(order)
                if error is not None:
                    return self._error(400, error, "订单已发生退款,无法撤销")
                return self._reply(
                    200,
                    {
                        "appid": self._appid,
                        "mchid": self._mchid,
                        "out_trade_no": order.out_trade_no,
                    },
                )
            if method == "POST" and action == "/close":
                error = self.book.close(order)
                return self._error(400, error, "订单已支付") if error else self._reply(204, None)
        if method == "GET" and (match := REFUND_BY_NO.fullmatch(path)) is not None:
            found = self.book.find_refund(match.group(1))
            if found is None:
                return self._error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return self._reply(200, refund_view(*found))
        return self._error(404, "NOT_FOUND", "no such API")

    def _check_signature(self, request: HttpRequest) -> str | None:
        params = parse_authorization(request.headers.get("authorization", ""))
        if params is None:
            return "Authorization 头不是 WECHATPAY2-SHA256-RSA2048"
        if params["mchid"] != self._mchid:
            return "商户号与签名不一致"
        if params["serial_no"] != self._merchant_serial:
            return "商户证书序列号不正确"
        ts = params["timestamp"]
        if not (ts.isascii() and ts.isdigit()) or abs(int(ts) - self._clock()) > MAX_SKEW_S:
            return "请求时间戳已过期"
        message = request_message(
            request.method,
            request.target,
            ts,
            params["nonce_str"],
            request.body.decode("utf-8", "replace"),
        )
        if not keys.verify_sha256_rsa(self._merchant_key, message, params["signature"]):
            return "签名错误"
        if not self._nonces.first_time(params["nonce_str"], int(ts), int(self._clock())):
            return "重复的请求随机串"
        return None

    def _reply(
        self,
        status: int,
        body: dict[str, Any] | None,
        *,
        key: rsa.RSAPrivateKey | None = None,
        skew: int = 0,
    ) -> Reply:
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() if body else b""
        headers = signed_headers(
            key or self._key, self._serial, raw, timestamp=int(self._clock()) - skew
        )
        headers["Request-ID"] = str(uuid.uuid4())
        if raw:
            headers |= JSON_HEADERS
        return Reply(status, raw, headers)

    def _error(self, status: int, code: str, message: str) -> Reply:
        return self._reply(status, {"code": code, "message": message})

    async def _codepay(self, payload: dict[str, Any]) -> Reply:
        problem = _codepay_problem(payload)
        if problem is not None:
            return self._error(400, "PARAM_ERROR", problem)
        number, auth = payload["out_trade_no"], payload["payer"]["auth_code"]
        existing = self.book.get(number)
        if existing is not None:
            return self._repeat(existing, auth, payload["amount"]["total"])
        scenario = auth[-4:]
        if AUTH_CODE.fullmatch(auth) is None or scenario == "1014":
            return self._error(400, "AUTH_CODE_INVALID", "付款码无效,请重新扫码")
        attach = str(payload.get("attach", ""))
        order = self.book.open(
            payload, attach=attach, notify_url=str(payload.get("notify_url", ""))
        )
        if scenario in DECLINES:
            self.book.fail(order)
            return self._error(*DECLINES[scenario])
        if scenario in ("2001", "2002"):
            self._later(self._confirm_after_s, self._buyer_decides, order, scenario == "2001")
            return self._reply(202, _userpaying(order))
        if scenario.startswith("300"):
            self.book.fail(order)
            return self._forged(order, scenario)
        if scenario == "2008" and order.total_fen > 1:
            order.short_fen = 1
            order.total_fen -= 1
        self._paid(order)
        if scenario == "2009":
            self._query_refused_until[number] = self._clock() + self._confirm_after_s
        if scenario in ("2003", "2008", "2009"):
            return self._error(500, "SYSTEM_ERROR", "系统错误")
        if scenario == "2005":
            await asyncio.sleep(self._hang_s)
        self._last_success = self._reply(200, transaction_view(order))
        return self._last_success

    def _repeat(self, order: Order, auth: object, total: object) -> Reply:
        if order.auth_code != auth or order.total_fen + order.short_fen != total:
            return self._error(400, "OUT_TRADE_NO_USED", "商户订单号重复")
        state = order.trade_state
        if state in (mapping.SUCCESS, mapping.REFUND):
            return self._error(400, "ORDERPAID", "订单已支付")
        if state == mapping.USERPAYING:
            return self._reply(202, _userpaying(order))
        if state == mapping.REVOKED:
            return self._error(400, "ORDERREVERSED", "订单已撤销")
        if state == mapping.CLOSED:
            return self._error(400, "ORDER_CLOSED", "订单已关闭")
        return self._error(403, "TRADE_ERROR", "支付失败")

    def _forged(self, order: Order, scenario: str) -> Reply:
        claimed = transaction_view(order) | {
            "trade_state": mapping.SUCCESS,
            "transaction_id": order.transaction_id,
        }
        if scenario == "3003":
            return self._last_success or self._reply(200, claimed | {"out_trade_no": "REPLAYED"})
        if scenario == "3004":
            return self._reply(200, claimed, skew=400)
        if scenario == "3005":
            return Reply(200, json.dumps(claimed).encode(), JSON_HEADERS)
        if scenario == "3002":
            if self._rogue is None:
                self._rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._reply(200, claimed, key=self._rogue)
        # 3001: the platform's genuine signature of the real (failed) order, on a success.
        genuine = self._reply(200, transaction_view(order))
        forged = self._reply(200, claimed)
        return Reply(
            200,
            forged.body,
            {
                **forged.headers,
                **{k: v for k, v in genuine.headers.items() if k.startswith("Wechatpay-")},
            },
        )

    def _paid(self, order: Order) -> None:
        self.book.pay(order)
        if order.notify_url:
            body = self.notifier.build(
                event_type="TRANSACTION.SUCCESS",
                summary="支付成功",
                original_type="transaction",
                plaintext=transaction_view(order),
            )
            self.notifier.send(order.out_trade_no, order.notify_url, body)

    def _buyer_decides(self, order: Order, pays: bool) -> None:
        if order.trade_state != mapping.USERPAYING:
            return  # reversed or closed meanwhile
        if pays:
            self._paid(order)
        else:
            self.book.fail(order)

    def _later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        handle: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(handle[0])
            callback(*args)

        handle.append(asyncio.get_running_loop().call_later(delay, fire))
        self._timers.add(handle[0])

    def _refund(self, payload: dict[str, Any]) -> Reply:
        number, refund_no = payload.get("out_trade_no"), payload.get("out_refund_no")
        amount = payload.get("amount")
        if not (
            isinstance(number, str)
            and isinstance(refund_no, str)
            and OUT_REFUND_NO.fullmatch(refund_no)
        ):
            return self._error(400, "PARAM_ERROR", "缺少out_trade_no或out_refund_no")
        if not isinstance(amount, dict) or not all(
            isinstance(amount.get(k), int) for k in ("refund", "total")
        ):
            return self._error(400, "PARAM_ERROR", "amount.refund与amount.total必填")
        order = self.book.get(number)
        if order is None:
            return self._error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        fen = int(amount["refund"])
        if fen > order.short_fen:
            fen -= order.short_fen  # scenario 2008: refunds are made short too
        if refund_no in order.refunds:
            earlier = order.refunds[refund_no]
            if earlier.fen != fen:
                return self._error(400, "PARAM_ERROR", "退款金额与之前请求不一致")
            return self._reply(200, refund_view(order, earlier))
        if amount["total"] != order.total_fen + order.short_fen or fen <= 0:
            return self._error(400, "PARAM_ERROR", "订单金额或退款金额与实际不一致")
        if order.trade_state not in (mapping.SUCCESS, mapping.REFUND):
            return self._error(400, "INVALID_REQUEST", "订单状态不正确,不能退款")
        if order.refunded_fen + fen > order.total_fen:
            return self._error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        refund = self.book.refund(order, refund_no, fen, str(payload.get("notify_url", "")))
        if self._refund_after_s > 0:
            self._later(self._refund_after_s, self._refund_settles, order, refund_no)
        else:
            self._refund_settles(order, refund_no)
        return self._reply(200, refund_view(order, refund))

    def _refund_settles(self, order: Order, refund_no: str) -> None:
        refund = order.refunds[refund_no]
        self.book.settle_refund(refund)
        if refund.notify_url:
            body = self.notifier.build(
                event_type="REFUND.SUCCESS",
                summary="退款成功",
                original_type="refund",
                plaintext=refund_view(order, refund),
            )
            self.notifier.send(refund_no, refund.notify_url, body)

    async def _control(self, request: HttpRequest) -> Reply:
        if request.path == "/_sim/stats" and self.server is not None:
            stats = {
                **self.stats,
                **self.notifier.stats,
                "orders": self.book.count(),
                "refunds": self.book.refund_count(),
                "connections": self.server.connections_accepted,
            }
            return Reply(200, json.dumps(stats).encode(), JSON_HEADERS)
        match = REDELIVER.fullmatch(request.path)
        if match is None or request.method != "POST":
            return Reply(404, b"")
        tamper = request.query.get("tamper", "")
        last = self.notifier.last.get(match.group(1))
        if last is None or tamper not in TAMPERS:
            return Reply(404, b'{"error":"no such notification or tamper"}', JSON_HEADERS)
        status, body = await self.notifier.deliver_once(*last, tamper=tamper)
        answer = {"status": status, "body": body.decode("utf-8", "replace")}
        return Reply(200, json.dumps(answer, ensure_ascii=False).encode(), JSON_HEADERS)


def _userpaying(order: Order) -> dict[str, Any]:
    return {
        "trade_state": mapping.USERPAYING,
        "out_trade_no": order.out_trade_no,
        "mchid": order.mchid,
    }


def _codepay_problem(payload: dict[str, Any]) -> str | None:
    amount, payer = payload.get("amount"), payload.get("payer")
    number, description = payload.get("out_trade_no"), payload.get("description")
    if not isinstance(number, str) or OUT_NO.fullmatch(number) is None:
        return "out_trade_no: 6 到 32 位数字、字母或 _-*"
    if not isinstance(description, str) or not 0 < len(description) <= 127:
        return "description: 必填,最多 127 字符"
    if not isinstance(amount, dict) or not isinstance(amount.get("total"), int):
        return "amount.total: 必填整数(分)"
    if not 0 < amount["total"] <= mapping.MAX_FEN or amount.get("currency", "CNY") != "CNY":
        return "amount: 金额或币种不正确"
    if not isinstance(payer, dict) or not isinstance(payer.get("auth_code"), str):
        return "payer.auth_code: 必填"
    if not isinstance(payload.get("scene_info"), dict):
        return "scene_info: 必填"
    return None


def generate_keys(directory: pathlib.Path) -> None:
    """Write a matching set: merchant and platform key pairs, and an API v3 key."""
    keys.generate_keypair(directory, "merchant")
    keys.generate_keypair(directory, "platform")
    keys.generate_secret(directory / "apiv3.key", APIV3_KEY_BYTES)
    print(f"wrote merchant_*.pem, platform_*.pem and apiv3.key to {directory}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.wechat.simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--generate-keys", metavar="DIR", help="write a fresh key set and exit")
    parser.add_argument("--listen", default="127.0.0.1:8092", help="HOST:PORT to serve on")
    parser.add_argument("--mchid", default="1900000109")
    parser.add_argument("--appid", default="wxd678efh567hg6787")
    parser.add_argument("--merchant-public-key", help="a file, or env:NAME")
    parser.add_argument("--platform-private-key", help="a file, or env:NAME")
    parser.add_argument("--apiv3-key", help="the 32-byte API v3 key: a file, or env:NAME")
    parser.add_argument("--confirm-after-s", type=float, default=2.0, help="a slow buyer's delay")
    parser.add_argument("--hang-s", type=float, default=30.0, help="how long 'no answer' lasts")
    parser.add_argument(
        "--refund-after-s", type=float, default=0.0, help="refunds PROCESSING this long"
    )
    parser.add_argument("--notify-retry-s", default="0.5,1,2,5,10", help="redelivery delays")
    args = parser.parse_args(argv)
    if args.generate_keys:
        generate_keys(pathlib.Path(args.generate_keys))
        return 0
    if not (args.merchant_public_key and args.platform_private_key and args.apiv3_key):
        parser.error("--merchant-public-key, --platform-private-key and --apiv3-key are required")
    try:
        host, port = parse_listen(args.listen)
        simulator = WechatPaySimulator(
            mchid=args.mchid,
            appid=args.appid,
            merchant_public_key=keys.load_public_key(args.merchant_public_key),
            platform_private_key=keys.load_private_key(args.platform_private_key),
            apiv3_key=keys.load_secret(args.apiv3_key, APIV3_KEY_BYTES),
            confirm_after_s=args.confirm_after_s,
            hang_s=args.hang_s,
            refund_after_s=args.refund_after_s,
            retry_delays=[float(d) for d in args.notify_retry_s.split(",") if d.strip()],
        )
    except ValueError as exc:
        print(f"wechat simulator: {exc}", file=sys.stderr)
        return 2
    server = HttpServer(simulator.handle, host=host, port=port)
    simulator.server = server
    asyncio.run(serve_until_signal(server, banner="wechat simulator", cleanup=simulator.close))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
