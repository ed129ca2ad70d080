# The pytest plugin, tested by running pytest in a subprocess on small
# example suites that use its fixtures: with an mcfault it starts, with a
# running one (option and environment variable), unconfigured, and loaded
# through the entry point of a wheel built from pyproject.toml.

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from mcfault.process import McfaultProcess

CLIENT_DIR = Path(__file__).resolve().parent.parent

# Runs in order. test_2 proves test_1's rule and counters were reset; test_3
# fails on purpose after setting a rule, and test_4 proves the reset ran
# all the same. FILE_RULES is what reset() brings back.
EXAMPLE = '''
import json
import os

import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheServerError

OOM = {"name": "oom", "command": "set", "action": "error",
       "message": "SERVER_ERROR out of memory storing object"}
FILE_RULES = json.loads(os.environ["EXAMPLE_FILE_RULES"])
ZEROED = os.environ.get("EXAMPLE_EXPECT_ZEROED") == "1"


def cache(addr):
    return Client(addr, timeout=3, default_noreply=False)


def test_1_fault_takes_effect(mcfault, mcfault_proxy):
    assert [r.name for r in mcfault.rules()] == FILE_RULES
    mcfault.set_rules({"rules": [OOM]})
    with pytest.raises(MemcacheServerError):
        cache(mcfault_proxy).set("k", "v")


def test_2_was_reset(mcfault, mcfault_proxy):
    assert [r.name for r in mcfault.rules()] == FILE_RULES
    assert cache(mcfault_proxy).set("k", "v") is True
    if ZEROED:
        assert mcfault.stats().faults_total == 0
        assert mcfault.events().last == 0


def test_3_fails_with_a_fault_in_force(mcfault):
    mcfault.set_rules({"rules": [OOM]})
    assert False, "deliberate"


def test_4_reset_after_a_failure(mcfault, mcfault_server, mcfault_proxy):
    assert [r.name for r in mcfault.rules()] == FILE_RULES
    assert mcfault_server.proxy == mcfault_proxy
    mcfault.set_rules({"rules": [OOM]})  # left for the session's end
'''

# The marker: needs POST /rules.
EXAMPLE_MARKER = '''
import pytest
from pymemcache.client.base import Client


@pytest.mark.mcfault({"name": "hot-miss", "key": "hot:*", "action": "miss"})
def test_marker_fault(mcfault_proxy, mcfault_server):
    c = Client(mcfault_proxy, timeout=3, default_noreply=False)
    c.set("hot:1", "v")
    assert c.get("hot:1") is None
    assert mcfault_server.client.get_rule("hot-miss").fired == 1


def test_marker_gone(mcfault_proxy):
    c = Client(mcfault_proxy, timeout=3, default_noreply=False)
    assert c.get("hot:1") == b"v"
'''


def run_pytest(tmp_path: Path, args: List[str], env: Dict[str, str],
               files: Optional[Dict[str, str]] = None,
               pythonpath: Optional[str] = str(CLIENT_DIR)
               ) -> subprocess.CompletedProcess:
    for name, text in (files or {'test_example.py': EXAMPLE}).items():
        (tmp_path / name).write_text(text)
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(('MCFAULT_', 'PYTEST_', 'EXAMPLE_'))}
    e.pop('PYTHONPATH', None)
    if pythonpath:
        e['PYTHONPATH'] = pythonpath
    e.update(env)
    return subprocess.run(
        [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-q',
         '-rA', *args, str(tmp_path)],
        cwd=tmp_path, env=e, capture_output=True, text=True, timeout=120)


def expect(res: subprocess.CompletedProcess, summary: str, rc: int) -> None:
    out = res.stdout + res.stderr
    assert res.returncode == rc, out
    assert summary in out.strip().splitlines()[-1], out


def example_env(file_rules: List[str], api: set) -> Dict[str, str]:
    return {'EXAMPLE_FILE_RULES': repr(file_rules).replace("'", '"'),
            'EXAMPLE_EXPECT_ZEROED': '1' if 'reset' in api else '0'}


def test_starts_mcfault_from_options(tmp_path: Path, mcfault_bin: str,
                                     memcached, api) -> None:
    res = run_pytest(tmp_path, ['-p', 'mcfault.pytest_plugin',
                                '--mcfault-bin', mcfault_bin,
                                '--mcfault-upstream', memcached.address],
                     example_env([], api))
    expect(res, '1 failed, 3 passed', 1)
    assert 'deliberate' in res.stdout


def test_starts_mcfault_from_env_with_rule_file(tmp_path: Path,
                                                mcfault_bin: str, memcached,
                                                rule_file: Path, api) -> None:
    env = example_env(['file-rule'], api)
    env.update(MCFAULT_BIN=mcfault_bin, MCFAULT_UPSTREAM=memcached.address,
               MCFAULT_CONFIG=str(rule_file))
    res = run_pytest(tmp_path, ['-p', 'mcfault.pytest_plugin'], env)
    expect(res, '1 failed, 3 passed', 1)


def test_connects_to_a_running_mcfault(tmp_path: Path, start_mcfault,
                                       api) -> None:
    p: McfaultProcess = start_mcfault()
    mc = p.client
    mc.set_rules({'rules': [{'name': 'leftover', 'action': 'drop'}]})
    res = run_pytest(tmp_path, ['-p', 'mcfault.pytest_plugin',
                                '--mcfault-admin', p.admin_url],
                     example_env([], api))
    # "leftover" was reset before the first test (test_1 checks), and
    # test_4's rule after the last.
    expect(res, '1 failed, 3 passed', 1)
    assert mc.rules() == []
    if 'reset' in api:
        assert mc.stats().faults_total == 0
    # The same through MCFAULT_ADMIN, and MCFAULT_PROXY naming the proxy.
    env = example_env([], api)
    env.update(MCFAULT_ADMIN=p.admin_url,
               MCFAULT_PROXY='%s:%d' % p.listen)
    res = run_pytest(tmp_path, ['-p', 'mcfault.pytest_plugin'], env)
    expect(res, '1 failed, 3 passed', 1)


def test_marker(tmp_path: Path, start_mcfault, need) -> None:
    need('add_rule', 'rule_by_name')
    p = start_mcfault()
    res = run_pytest(tmp_path, ['-p', 'mcfault.pytest_plugin',
                                '--mcfault-admin', p.admin_url], {},
                     files={'test_marker.py': EXAMPLE_MARKER})
    expect(res, '2 passed', 0)
    assert p.client.rules() == []


def test_unconfigured_fails_and_says_how(tmp_path: Path) -> None:
    res = run_pytest(tmp_path, ['-p', 'mcfault.pytest_plugin'],
                     example_env([], set()))
    assert res.returncode == 1
    assert 'mcfault is not configured' in res.stdout
    assert '--mcfault-admin URL' in res.stdout


def test_dead_admin_fails_the_session(tmp_path: Path) -> None:
    from mcfault.process import free_port
    res = run_pytest(tmp_path, ['-p', 'mcfault.pytest_plugin',
                                '--mcfault-admin',
                                'http://127.0.0.1:%d' % free_port()],
                     example_env([], set()))
    assert res.returncode == 1
    assert 'cannot reach' in res.stdout


def test_options_in_help(tmp_path: Path) -> None:
    res = run_pytest(tmp_path, ['-p', 'mcfault.pytest_plugin', '--help'], {},
                     files={})
    for opt in ('--mcfault-admin', '--mcfault-bin', '--mcfault-upstream',
                '--mcfault-config', '--mcfault-proxy'):
        assert opt in res.stdout


@pytest.fixture(scope='module')
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built from pyproject.toml by setuptools (no network, no
    isolation) and unpacked as pip would install it."""
    work = tmp_path_factory.mktemp('build')
    src = work / 'src'
    shutil.copytree(CLIENT_DIR, src, ignore=shutil.ignore_patterns(
        'tests', '__pycache__', '*.egg-info', 'build', '.pytest_cache'))
    dist = work / 'dist'
    dist.mkdir()
    code = ('import sys; from setuptools import build_meta as b; '
            'print(b.build_wheel(sys.argv[1]))')
    res = subprocess.run([sys.executable, '-c', code, str(dist)], cwd=src,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    wheel = dist / res.stdout.strip().splitlines()[-1]
    site = work / 'site'
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def test_wheel_contents(wheel_dir: Path) -> None:
    assert (wheel_dir / 'mcfault' / 'py.typed').exists()
    [info] = wheel_dir.glob('mcfault-*.dist-info')
    ep = (info / 'entry_points.txt').read_text()
    assert '[pytest11]' in ep
    assert 'mcfault.pytest_plugin = mcfault.pytest_plugin' in ep


def test_installed_plugin_loads_by_entry_point(tmp_path: Path,
                                               wheel_dir: Path,
                                               mcfault_bin: str, memcached,
                                               api) -> None:
    args = ['--mcfault-bin', mcfault_bin,
            '--mcfault-upstream', memcached.address]
    env = example_env([], api)
    res = run_pytest(tmp_path, args, env, pythonpath=str(wheel_dir))
    expect(res, '1 failed, 3 passed', 1)
    # -p on top of the entry point is not a double registration.
    res = run_pytest(tmp_path, ['-p', 'mcfault.pytest_plugin', *args], env,
                     pythonpath=str(wheel_dir))
    expect(res, '1 failed, 3 passed', 1)


def test_readme_first_example_passes(tmp_path: Path, mcfault_bin: str,
                                     memcached, need) -> None:
    need('add_rule', 'rule_by_name')
    readme = (CLIENT_DIR / 'README.md').read_text()
    example = readme.split('```python\n', 1)[1].split('```', 1)[0]
    res = run_pytest(tmp_path, ['-p', 'mcfault.pytest_plugin',
                                '--mcfault-bin', mcfault_bin,
                                '--mcfault-upstream', memcached.address],
                     {}, files={'test_readme.py': example})
    expect(res, '1 passed', 0)


def test_guide_first_example_passes(tmp_path: Path, start_mcfault,
                                    need) -> None:
    need('add_rule', 'rule_by_name')
    guide = (CLIENT_DIR / '..' / '..' / 'docs' / 'testing.md')
    # The Python section: from its heading to the next language's.
    text = guide.read_text().split('\n## Python\n', 1)[1]
    text = text.split('\n## ', 1)[0]
    example = text.split('```python\n', 1)[1].split('```', 1)[0]
    example = textwrap.dedent(example)  # a block inside a list item
    p = start_mcfault()
    res = run_pytest(tmp_path, ['-p', 'mcfault.pytest_plugin',
                                '--mcfault-admin', p.admin_url],
                     {}, files={'test_first_fault.py': example})
    expect(res, '1 passed', 0)
