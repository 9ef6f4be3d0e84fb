"""The UI's message catalogs (static/src/i18n): Japanese and English have the same keys, every error
code the server can send has a message in both, and the kernel errors the UI explains still look
the way its patterns expect."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import server.errors
from kernels.disk_bounds import DISK_LIMIT
from kernels.helpers import SUFFIX, DatasetNotFound, dataset_filename, read_dataset
from kernels.launcher import KernelExit
from kernels.policy import BLOCKED_BUILTINS, _blocked_builtin, _blocked_magic, _blocked_shell_escape, _guarded_import
from server.execution.outputs import OutputCollector, truncation_notice
from server.execution.sanitize import Unsafe, unsafe_output
from server.execution.session import death_output
from server.handlers.base import CODE_OF_STATUS

ROOT = Path(__file__).resolve().parent.parent
I18N = ROOT / "static" / "src" / "i18n"
KEY = re.compile(r'^  "([\w.]+)": ', re.MULTILINE)
# Error codes the UI makes itself (no answer, a cancelled upload, a status without a JSON body).
CLIENT_CODES = {"network", "aborted", "http"}


def keys(language: str) -> list[str]:
    return KEY.findall((I18N / f"{language}.ts").read_text(encoding="utf-8"))


def messages(language: str) -> dict[str, str]:
    text = (I18N / f"{language}.ts").read_text(encoding="utf-8")
    return dict(re.findall(r'^  "([\w.]+)": "((?:[^"\\]|\\.)*)",$', text, re.MULTILINE))


def server_codes() -> set[str]:
    """Every ``code`` the server can put in an error: the domain errors' classes, the statuses
    Tornado answers by itself, and the literal codes in handlers and websocket frames."""
    codes = {cls.code for _, cls in inspect.getmembers(server.errors, inspect.isclass)
             if issubclass(cls, server.errors.BIError)}
    codes |= set(CODE_OF_STATUS.values())
    for path in (ROOT / "server").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        codes |= set(re.findall(r'\bcode\s*=\s*"([a-z_]+)"', source))
        codes |= set(re.findall(r'"code":\s*"([a-z_]+)"', source))
        codes |= {code for pair in re.findall(r'"code":\s*"([a-z_]+)"\s+if\s+.+?\s+else\s+"([a-z_]+)"', source)
                  for code in pair}
    return codes


class TestCatalogs:
    def test_same_keys(self):
        """Japanese and English have the same keys, each once (tsc checks this too, from en's type)."""
        ja, en = keys("ja"), keys("en")
        assert len(ja) == len(set(ja)) and len(en) == len(set(en))
        assert set(ja) == set(en)

    def test_same_placeholders(self):
        """A message takes the same parameters in both languages."""
        ja, en = messages("ja"), messages("en")
        names = re.compile(r"\{(\w+)[}|]")
        different = {key: (set(names.findall(ja[key])), set(names.findall(en[key])))
                     for key in ja if key in en and set(names.findall(ja[key])) != set(names.findall(en[key]))}
        assert different == {}

    def test_japanese_reads_as_japanese(self):
        """Japanese sentences end in 。 not a period, use 「」 rather than quotes around names, and
        the glossary's words (ログイン, ユーザー, パラメータ), not their variants."""
        for key, text in messages("ja").items():
            assert not re.search(r"[ぁ-んァ-ン一-龯]\.(\s|$)", text), (key, text)
            assert "“" not in text and "”" not in text, (key, text)
            assert not re.search(r"サインイン|サインアウト|ユーザ(?!ー)|パラメーター|ダッシュボードー", text), (key, text)


class TestErrorCodes:
    def test_server_codes_found(self):
        """The scan finds the codes it should (a guard against a scan that finds nothing)."""
        assert {"bad_request", "not_found", "conflict", "timeout", "internal_error", "bad_message",
                "busy", "not_built", "method_not_allowed"} <= server_codes()

    @pytest.mark.parametrize("language", ["ja", "en"])
    def test_every_code_has_a_message(self, language):
        """Each error code the server sends, and the client's own, has a message in each language."""
        have = set(keys(language))
        missing = sorted(code for code in server_codes() | CLIENT_CODES if f"error.{code}" not in have)
        assert missing == [], f"add error.<code> to static/src/i18n/{language}.ts for {missing}"


def kernel_patterns() -> list[tuple[str, re.Pattern[str], str]]:
    """(ename, pattern, key) of each kernel error the UI explains, read from kernel.ts."""
    source = (I18N / "kernel.ts").read_text(encoding="utf-8")
    found = re.findall(r'ename: "(\w+)", pattern: /(.*?)/, key: "([\w.]+)"', source)
    assert len(found) >= 8
    return [(ename, re.compile(pattern), key) for ename, pattern, key in found]


def explained(ename: str, evalue: str) -> str | None:
    """The catalog key the UI shows for this error output (the first pattern that matches)."""
    for known_ename, pattern, key in kernel_patterns():
        if known_ename == ename and pattern.search(evalue):
            return key
    return None


def raised(fn, *args) -> BaseException:
    with pytest.raises(Exception) as info:
        fn(*args)
    return info.value


class TestKernelErrors:
    def test_keys_exist(self):
        """Every key kernel.ts uses is in both catalogs."""
        for _, _, key in kernel_patterns():
            assert key in keys("ja") and key in keys("en"), key

    def test_blocked(self):
        """Blocked imports, builtins, magics and shell escapes, as the kernel raises them."""
        error = raised(_guarded_import, "socket", None, None, None, 0)
        assert explained(type(error).__name__, str(error)) == "kernel.blocked_import"
        assert re.search(r"'socket'", str(error))
        name = next(iter(BLOCKED_BUILTINS))
        error = raised(_blocked_builtin(name, BLOCKED_BUILTINS[name]))
        assert explained(type(error).__name__, str(error)) == "kernel.blocked_builtin"
        error = raised(_blocked_magic("%"), "timeit")
        assert explained(type(error).__name__, str(error)) == "kernel.blocked_magic"
        error = raised(_blocked_shell_escape, "ls")
        assert explained(type(error).__name__, str(error)) == "kernel.blocked_magic"

    def test_dataset_not_found(self, tmp_path):
        """load_dataset's error for a name it does not have, with and without datasets to offer."""
        error = raised(read_dataset, str(tmp_path), "売上")
        assert isinstance(error, DatasetNotFound)
        assert explained("DatasetNotFound", str(error)) == "kernel.dataset_not_found_none"
        (tmp_path / dataset_filename("在庫")).write_bytes(b"")
        assert SUFFIX
        error = raised(read_dataset, str(tmp_path), "売上")
        assert explained("DatasetNotFound", str(error)) == "kernel.dataset_not_found"

    def test_limits(self):
        """Memory, a dead kernel, unsafe charts and truncated output, as the server words them."""
        collector = OutputCollector(10_000, 2048)
        collector.add({"output_type": "error", "ename": "MemoryError", "evalue": "", "traceback": []})
        assert explained("MemoryError", collector.outputs[0]["evalue"]) == "kernel.memory_limit"
        oom = death_output({"oom": True, "message": KernelExit(-9, True).describe(2048)})
        assert explained(oom["ename"], oom["evalue"]) == "kernel.memory_limit"
        died = death_output({"oom": False, "message": KernelExit(-11, False).describe(2048)})
        assert explained(died["ename"], died["evalue"]) == "kernel.died"
        disk = death_output({"oom": False, "code": DISK_LIMIT, "message": KernelExit(-9, False, DISK_LIMIT).describe(2048)})
        assert explained(disk["ename"], disk["evalue"]) == "kernel.disk_limit"
        unsafe = unsafe_output(Unsafe("uses CustomJS"))
        assert explained(unsafe["ename"], unsafe["evalue"]) == "kernel.unsafe_output"
        source = (I18N / "kernel.ts").read_text(encoding="utf-8")
        truncated = re.compile(re.search(r"export const TRUNCATED = /(.*?)/;", source)[1])
        assert truncated.search(truncation_notice(5 * 1024 * 1024))[1] == "5 MB"
