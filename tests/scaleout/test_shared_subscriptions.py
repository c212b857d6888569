"""Why instances do not share one `$share` subscription on Mosquitto (docs/scaling.md).

Mosquitto hands the messages of a shared subscription to its members in turn, whatever the topic:
one lamp's reports alternate between two instances, so neither sees two consecutive reports of it
(lamp_failure needs 2, dim_mismatch and voltage rules 3) and its silence checks fire on both. This
pins the broker behaviour the design relies on: if a Mosquitto release keeps a topic on one member,
this test fails and docs/scaling.md should be revisited.
"""

from __future__ import annotations

import itertools
import threading
import time

import paho.mqtt.client as paho

from tests.procs import wait_until
from tests.servers import Mosquitto

REPORTS = 20


def test_mosquitto_share_splits_one_devices_reports_across_instances(mosquitto: Mosquitto) -> None:
    got: dict[int, list[int]] = {0: [], 1: []}
    lock = threading.Lock()
    members: list[paho.Client] = []
    subscribed = threading.Barrier(3, timeout=10)
    try:
        for i in got:
            client = paho.Client(
                paho.CallbackAPIVersion.VERSION2, client_id=f"instance-{i}", protocol=paho.MQTTv5
            )

            def on_message(c: paho.Client, userdata: object, msg: paho.MQTTMessage, i: int = i) -> None:
                with lock:
                    got[i].append(int(msg.payload))

            client.on_message = on_message

            def on_subscribe(*args: object) -> None:
                subscribed.wait()

            client.on_subscribe = on_subscribe
            client.connect(mosquitto.host, mosquitto.port)
            client.loop_start()
            client.subscribe("$share/lightctl/slc/+/up/telemetry", qos=0)
            members.append(client)
        subscribed.wait()
        lamp = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="lamp-ha-001")
        lamp.connect(mosquitto.host, mosquitto.port)
        lamp.loop_start()
        for seq in range(REPORTS):
            lamp.publish("slc/HA-001/up/telemetry", str(seq), qos=1).wait_for_publish(5)
            time.sleep(0.01)
        wait_until(lambda: len(got[0]) + len(got[1]) == REPORTS, 10, "every report delivered once")
        lamp.loop_stop()
        lamp.disconnect()
    finally:
        for client in members:
            client.loop_stop()
            client.disconnect()
    # Each report reached exactly one member, and both members got some of this one lamp's reports.
    assert sorted(got[0] + got[1]) == list(range(REPORTS))
    assert got[0]
    assert got[1]
    consecutive = [(a, b) for reports in got.values() for a, b in itertools.pairwise(reports) if b == a + 1]
    assert not consecutive, f"a member saw consecutive reports: {consecutive}"
