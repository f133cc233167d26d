"""The hostile suite: attacks against a real sluice-collector while an honest
sluice-send stream is in flight. Each test asserts that the collector stays
up, writes the honest stream exactly, and that the attack moved a named
counter. Fixtures and helpers are the system tests' (tests/system)."""
import importlib.util
import sys
from pathlib import Path

SYSTEM = Path(__file__).resolve().parents[1] / "system"
sys.path.insert(0, str(SYSTEM))

_spec = importlib.util.spec_from_file_location("system_conftest", SYSTEM / "conftest.py")
_system = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_system)
# pcapgen, no_collector_left_behind, BUILD, read_pcap, ...: collector_helpers
# imports BUILD and read_pcap from "conftest", which is this module here.
globals().update({k: v for k, v in vars(_system).items() if not k.startswith("_")})
