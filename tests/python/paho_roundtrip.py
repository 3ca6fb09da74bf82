#!/usr/bin/env python3
"""paho-mqtt (v2 API, MQTT v5) over TLS: connect, subscribe, publish, receive.

Run by tests/tests/clients.rs. Prints one JSON line describing the outcome and exits
0 only if the client's own message came back intact with the expected properties.
"""
import argparse
import json
import ssl
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--payload", required=True)
    ap.add_argument("--qos", type=int, default=1)
    ap.add_argument("--client-id", default="e2e-paho")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--websocket", help="MQTT over WebSocket on this path (wss with --cafile)")
    args = ap.parse_args()

    result = {"connected": False, "reason_code": None, "subscribed": False,
              "published": False, "received": None, "error": None}
    connected = threading.Event()
    subscribed = threading.Event()
    received = threading.Event()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id,
                         protocol=mqtt.MQTTv5,
                         transport="websockets" if args.websocket else "tcp")
    if args.websocket:
        client.ws_set_options(path=args.websocket)
    client.tls_set(ca_certs=args.cafile, certfile=args.cert, keyfile=args.key,
                   cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)

    def on_connect(c, userdata, flags, reason_code, properties):
        result["reason_code"] = str(reason_code)
        result["connected"] = not reason_code.is_failure
        connected.set()
        if not reason_code.is_failure:
            c.subscribe(args.topic, qos=args.qos)

    def on_subscribe(c, userdata, mid, reason_codes, properties):
        result["subscribed"] = all(not rc.is_failure for rc in reason_codes)
        subscribed.set()
        if result["subscribed"]:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = ("e2e", "paho")
            c.publish(args.topic, args.payload.encode(), qos=args.qos, properties=props)
            result["published"] = True

    def on_message(c, userdata, msg):
        user = getattr(msg.properties, "UserProperty", None) if msg.properties else None
        result["received"] = {"topic": msg.topic, "payload": msg.payload.decode("utf-8", "replace"),
                              "qos": msg.qos, "user_properties": user}
        received.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(args.host, args.port, keepalive=30)
    except Exception as e:  # TLS or TCP failure
        result["error"] = f"connect: {e!r}"
        print(json.dumps(result))
        return 1
    client.loop_start()
    ok = received.wait(args.timeout)
    client.disconnect()
    client.loop_stop()
    if not ok:
        result["error"] = "timed out waiting for own message"
    print(json.dumps(result))
    r = result["received"]
    good = (ok and r["topic"] == args.topic and r["payload"] == args.payload
            and r["qos"] == args.qos and r["user_properties"] == [("e2e", "paho")])
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
