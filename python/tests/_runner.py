"""Runs a test module's test_* functions without pytest and prints the
closing line 'N passed, N failed' that lit tests check."""

import sys


def run(namespace) -> None:
    tests = [f for name, f in sorted(namespace.items()) if name.startswith("test_")]
    failed = 0
    for test in tests:
        try:
            test()
        except Exception as e:  # noqa: BLE001 - report every failure kind
            failed += 1
            print(f"FAILED {test.__name__}: {e!r}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
