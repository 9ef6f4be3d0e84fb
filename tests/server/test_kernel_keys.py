"""The keys that seal kernels' HMAC keys in the store (``server/kernel_keys.py``); compose's ``keys-init`` making
their file once is ``tests/test_compose.py``'s."""

from __future__ import annotations

import pytest

from server.kernel_keys import KernelKeyError, KernelKeys, load, new_secret

OLD, NEW = new_secret(), new_secret()
HMAC = b"5c3e0d2a-0f1e-4b7a-9c1d-2e3f4a5b6c7d"


def test_a_sealed_key_opens_for_its_record_only():
    keys = KernelKeys([OLD])
    kid, sealed = keys.seal(HMAC, "session-1")
    assert HMAC.decode() not in sealed and HMAC not in sealed.encode()
    assert keys.open(kid, sealed, "session-1") == HMAC
    with pytest.raises(KernelKeyError):
        keys.open(kid, sealed, "session-2")  # copied onto another record
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(KernelKeyError):
        keys.open(kid, tampered, "session-1")


def test_rotation_accepts_both_keys_and_seals_with_the_new_one():
    before = KernelKeys([OLD])
    kid_old, sealed_old = before.seal(HMAC, "s")
    during = KernelKeys.parse(f"{NEW},{OLD}")
    assert during.open(kid_old, sealed_old, "s") == HMAC
    kid_new, sealed_new = during.seal(HMAC, "s")
    assert kid_new != kid_old and kid_new == KernelKeys([NEW]).current
    after = KernelKeys([NEW])
    assert after.open(kid_new, sealed_new, "s") == HMAC
    with pytest.raises(KernelKeyError, match="not configured"):
        after.open(kid_old, sealed_old, "s")


def test_keys_must_be_long_and_at_most_two():
    with pytest.raises(KernelKeyError, match="32"):
        KernelKeys(["short"])
    with pytest.raises(KernelKeyError, match="at most 2"):
        KernelKeys([new_secret() for _ in range(3)])
    with pytest.raises(KernelKeyError):
        KernelKeys.parse(" , ")


def test_load_prefers_text_then_file_then_the_data_dir(tmp_path):
    file = tmp_path / "kernel_keys"
    file.write_text(f"{NEW}\n{OLD}\n")
    assert load(OLD, str(file), None).current == KernelKeys([OLD]).current
    assert load("", str(file), None).current == KernelKeys([NEW]).current
    kept = load("", "", tmp_path / "data")
    assert load("", "", tmp_path / "data").current == kept.current  # made once, then kept
    assert (tmp_path / "data" / "kernel_keys").stat().st_mode & 0o077 == 0
    with pytest.raises(KernelKeyError, match="BI_KERNEL_KEYS"):
        load("", "", None)

