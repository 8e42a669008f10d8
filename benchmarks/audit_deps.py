"""Dependency audit of the locked set (``requirements-lock.txt``) with pip-audit, that cannot pass
silently when it could not look.

pip-audit asks a vulnerability service about every pinned version. When the service cannot answer
(no network, a proxy that serves the project JSON but not ``/pypi/<name>/<version>/json``, DNS for
OSV blocked) pip-audit *skips* each package ("could not be audited") and still prints "No known
vulnerabilities found" with exit 0. This wrapper reads pip-audit's JSON and says what happened:

- exit 1: a known vulnerability in a pin (listed with its fix versions);
- exit 0 with a ``DEGRADED`` banner: some or all pins were not audited (the reason is printed);
  ``--strict`` makes that exit 2, for a CI that has the network;
- exit 0: every pin audited, nothing known.

    python benchmarks/audit_deps.py [--lock requirements-lock.txt] [--service pypi|osv] [--strict]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_audit(lock: Path, service: str) -> tuple[dict | None, str]:
    cmd = [sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip", "-f", "json",
           "--progress-spinner", "off", "-s", service]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    try:
        return json.loads(out.stdout), out.stderr
    except json.JSONDecodeError:
        tail = [ln for ln in out.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        return None, tail[0][:300]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lock", type=Path, default=ROOT / "requirements-lock.txt")
    ap.add_argument("--service", default="pypi", choices=["pypi", "osv"])
    ap.add_argument("--strict", action="store_true", help="exit 2 when any pin could not be audited")
    args = ap.parse_args()
    pins = [ln for ln in args.lock.read_text().splitlines() if "==" in ln and not ln.lstrip().startswith("#")]
    try:
        import pip_audit  # noqa: F401
    except ImportError:
        print("DEGRADED: pip-audit is not installed (pip install -e '.[dev]'); dependencies NOT audited")
        return 2 if args.strict else 0
    report, err = run_audit(args.lock, args.service)
    if report is None:
        print(f"DEGRADED: pip-audit ({args.service}) failed, dependencies NOT audited: {err}")
        return 2 if args.strict else 0
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    vulnerable = [d for d in deps if d.get("vulns")]
    audited = len(deps) - len(skipped)
    print(f"pip-audit ({args.service}) on {args.lock.name}: {len(pins)} pins, {audited} audited, "
          f"{len(skipped)} not audited, {len(vulnerable)} with known vulnerabilities")
    for d in vulnerable:
        for v in d["vulns"]:
            fix = ", ".join(v.get("fix_versions") or []) or "no fix released"
            print(f"VULNERABLE {d['name']}=={d['version']}: {v['id']} (fixed in: {fix})")
    if skipped:
        reasons = sorted({d["skip_reason"].split(":")[0] for d in skipped})
        print(f"DEGRADED: {len(skipped)} of {len(deps)} pins were NOT audited ({'; '.join(reasons)}), e.g. "
              f"{', '.join(d['name'] for d in skipped[:5])}. The vulnerability service did not answer for "
              f"them; 'No known vulnerabilities' does not cover them.")
    if vulnerable:
        return 1
    return 2 if skipped and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
