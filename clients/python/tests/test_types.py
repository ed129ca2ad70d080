# The package's type hints (it ships py.typed) hold under mypy --strict,
# and a small program using the client type-checks against them.

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parent.parent

USER = '''
from typing import List, Optional
import mcfault

mc = mcfault.Mcfault("http://127.0.0.1:8080", timeout=2.0)
rules: List[mcfault.Rule] = mc.rules()
fired: int = mc.get_rule("oom").fired
with mc.fault({"name": "oom", "action": "drop"}) as f:
    names: List[str] = f.names
text: Optional[str] = mc.upstream_command("version").text
try:
    mc.add_rule([{"name": "a", "action": "drop"}])
except mcfault.RuleError as e:
    problems: List[str] = e.problems
    status: int = e.status
'''


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, '-m', 'mypy', '--strict',
                           '--no-incremental', '--cache-dir=/dev/null',
                           *args], cwd=CLIENT_DIR, capture_output=True,
                          text=True, timeout=300)


def test_package_is_strictly_typed() -> None:
    res = mypy('mcfault')
    assert res.returncode == 0, res.stdout + res.stderr


def test_user_code_type_checks(tmp_path: Path) -> None:
    f = tmp_path / 'user.py'
    f.write_text(USER)
    res = mypy(str(f))
    assert res.returncode == 0, res.stdout + res.stderr
    f.write_text(USER + 'wrong: str = mc.stats().faults_total\n')
    res = mypy(str(f))
    assert res.returncode == 1 and 'Incompatible types' in res.stdout
