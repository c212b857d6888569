"""`lightctl serve` against a Mosquitto that wants a password on every listener and TLS on lightctl's:
it connects with its credentials and the CA and the field devices come online; a refused password
or a certificate from the wrong CA is said plainly in the log, and the service keeps running and
retrying rather than dying or looping in silence.

(tests/drivers/test_mqtt_connection.py covers the same on the driver alone; these run the commands
a site runs, with config.yaml as a user writes it.)
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.procs import Api, DistrictCopy, LightctlProcess, wait_until
from tests.security.conftest import ONE_ROAD, ApiTokens, SecuredBroker, serve_config, sim_config

REFUSED = r".*(?i:bad user ?name or password|not authori[sz]ed|refused lightctl.s credentials).*"


def test_serve_over_tls_with_a_password_sees_the_field_come_online(
    district: DistrictCopy, secured_broker: SecuredBroker, api_tokens: ApiTokens, tmp_path: Path
) -> None:
    config = serve_config(district, secured_broker, api_tokens)
    with (
        LightctlProcess.serve(config, tmp_path / "serve.log") as serve,
        LightctlProcess.sim(sim_config(district, secured_broker), tmp_path / "sim.log") as sim,
    ):
        serve.wait_serving()
        sim.wait_for_log(r"lightctl sim: \d+ lamps", 30)
        with Api(serve.base_url(), api_tokens.of("viewer")) as api:
            lamps = api.devices(kind="lamp")
            assert len(lamps) == 331  # the whole district's smart lamps, behind the concentrator too

            def all_online() -> bool:
                return all(d["online"] for d in api.devices(kind="lamp"))

            wait_until(all_online, 60, "every lamp online through the TLS listener")

            def all_reported() -> bool:
                return all(d["last_seen"] and d["power_w"] is not None for d in api.devices(kind="lamp"))

            # Readings, not only the retained `online` states, reached the service.
            wait_until(all_reported, 30, "a reading from every lamp")
        assert serve.running
        assert sim.running
    for process in (serve, sim):
        log = process.log()
        assert "Traceback" not in log, log
        for password in secured_broker.users.values():
            assert password not in log


@pytest.mark.slow  # waits through several reconnect attempts
def test_a_refused_password_is_reported_as_such_and_serve_keeps_retrying(
    district: DistrictCopy, secured_broker: SecuredBroker, api_tokens: ApiTokens, tmp_path: Path
) -> None:
    wrong = "not-the-password-" + secured_broker.users["lightctl"][::-1]
    config = serve_config(district, secured_broker, api_tokens, password=wrong, partition=ONE_ROAD)
    with LightctlProcess.serve(config, tmp_path / "serve.log") as serve:
        serve.wait_serving()
        # Mosquitto answers a wrong password with "not authorized" (MQTT 5 reason 135; 3.1.1 code 5).
        line = serve.wait_for_log(REFUSED, 20).group(0)
        # What a user reads: which broker, and that it refused lightctl's credentials (not just a code).
        assert f"{secured_broker.host}:{secured_broker.tls_port}" in line, line
        started = time.monotonic()
        time.sleep(8)  # several reconnect attempts (backoff 0.5 s doubling)
        assert serve.running, serve.log_tail()
        with Api(serve.base_url()) as api:
            assert api.health()["status"] == "ok"  # the API stays up for the operator to look at
        log = serve.log()
        assert time.monotonic() - started >= 8
    assert "Traceback" not in log, log
    assert wrong not in log
    # Said once per change of error, not once per attempt: the log stays readable.
    refusals = [x for x in log.splitlines() if re.search(REFUSED, x)]
    assert 1 <= len(refusals) <= 2, refusals
    # Last, so that the checks above are made whatever this finds.
    assert re.search(r"(?i)credential|user ?name|password", line), (
        f"the log says the connection was refused but not that the credentials were: {line!r}"
    )


def test_a_broker_certificate_from_another_ca_is_refused_clearly(
    district: DistrictCopy, secured_broker: SecuredBroker, api_tokens: ApiTokens, tmp_path: Path
) -> None:
    config = serve_config(
        district, secured_broker, api_tokens, ca=secured_broker.other_ca, partition=ONE_ROAD
    )
    with LightctlProcess.serve(config, tmp_path / "serve.log") as serve:
        serve.wait_serving()
        line = serve.wait_for_log(r".*(?i:certificate verify failed).*", 20).group(0)
        assert f"{secured_broker.host}:{secured_broker.tls_port}" in line, line
        time.sleep(3)
        assert serve.running, serve.log_tail()
        log = serve.log()
    assert "Traceback" not in log, log
    assert secured_broker.users["lightctl"] not in log
