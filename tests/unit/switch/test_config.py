"""Config validation: a bad file is refused with an error naming the key and the problem."""

from __future__ import annotations

import hashlib
import pathlib
import tomllib

import pytest

from switch.config import ConfigError, load, parse

GOOD = f"""
[server]
listen = "127.0.0.1:50051"

[redis]
url = "redis://127.0.0.1:6379/0"

[security]
fingerprint_key_env = "FP_KEY"

[[merchants]]
id = "m_one"
api_key_sha256 = "{hashlib.sha256(b"k").hexdigest()}"
rate_per_s = 50
burst = 10

[[channels]]
name = "sandbox"
endpoints = ["127.0.0.1:50061", "127.0.0.1:50062"]
timeout_ms = 2000
"""
ENV = {"FP_KEY": "ab" * 32}


def cfg(text: str):
    return parse(tomllib.loads(text), base_dir=pathlib.Path("."), env=ENV)


def test_a_good_file_parses_with_defaults():
    c = cfg(GOOD)
    assert c.merchants[0].rate_per_s == 50
    assert c.channels[0].endpoints == ("127.0.0.1:50061", "127.0.0.1:50062")
    assert c.redis.idempotency_ttl_s == 86_400
    assert c.fingerprint_key == bytes.fromhex("ab" * 32)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("timeout_ms = 2000", "timeout_ms = 0"),
            "channels[0].timeout_ms: must be from 1 to 600000, got 0",
        ),
        (("timeout_ms = 2000", 'timeout_ms = "fast"'), "channels[0].timeout_ms: must be int"),
        (('id = "m_one"', 'id = "M One"'), "merchants[0].id: must be 1-24 characters of [a-z0-9_]"),
        # `$` in a pattern also matches before a final newline; the patterns end in \Z.
        (('id = "m_one"', 'id = "m_one\\n"'), "merchants[0].id: must be 1-24 characters"),
        (
            ('listen = "127.0.0.1:50051"', 'listen = "127.0.0.1:50051\\n"'),
            "server.listen: must be 'host:port'",
        ),
        (
            ('api_key_sha256 = "', 'api_key_sha256 = "zz'),
            "merchants[0].api_key_sha256: must be 64 lower-case hex digits",
        ),
        (
            ('endpoints = ["127.0.0.1:50061", "127.0.0.1:50062"]', "endpoints = []"),
            "channels[0].endpoints",
        ),
        (('url = "redis://127.0.0.1:6379/0"', 'url = "http://x"'), "redis.url: must be redis://"),
        (
            ('url = "redis://127.0.0.1:6379/0"', 'url = "unix://relative.sock"'),
            "redis.url: must be redis://",
        ),
        (("burst = 10", "burst = 10\ncolour = 1"), "merchants[0].colour: unknown key"),
        (
            ('fingerprint_key_env = "FP_KEY"', 'fingerprint_key_env = "NOPE"'),
            "security.fingerprint_key_env",
        ),
        (
            ('listen = "127.0.0.1:50051"', 'listen = "nowhere"'),
            "server.listen: must be 'host:port'",
        ),
        (
            ('listen = "127.0.0.1:50051"', 'listen = "127.0.0.1:50051"\naccept_loops = 0'),
            "server.accept_loops: must be from 1 to 64",
        ),
    ],
)
def test_each_problem_names_its_key(change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as caught:
        cfg(GOOD.replace(old, new, 1))
    assert message in str(caught.value)


def test_a_unix_socket_redis_url_is_accepted():
    url = "unix:///run/redis/redis.sock?db=2"
    c = cfg(GOOD.replace('url = "redis://127.0.0.1:6379/0"', f'url = "{url}"'))
    assert c.redis.url == url


def test_duplicates_and_missing_sections_are_named():
    dup = GOOD + '\n[[channels]]\nname = "sandbox"\nendpoints = ["127.0.0.1:1"]\n'
    with pytest.raises(ConfigError, match=r"channels\[1\]\.name: duplicate value 'sandbox'"):
        cfg(dup)
    no_merchants = GOOD.split("[[merchants]]")[0] + "[[channels]]" + GOOD.split("[[channels]]")[1]
    with pytest.raises(ConfigError, match="merchants: at least one"):
        cfg(no_merchants)


def test_a_file_that_is_not_toml_or_missing_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nlisten=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad, env=ENV)
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "missing.toml", env=ENV)
