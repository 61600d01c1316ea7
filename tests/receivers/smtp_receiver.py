"""SMTP server for the output tests (aiosmtpd): STARTTLS required, AUTH PLAIN/LOGIN required
after TLS (user `sensor`, password from --password). Each message is stored as one JSON file
with the envelope, the parsed subject and the decoded text body.
"""
import argparse
import email
import email.policy
import json
import os
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--out", required=True)
p.add_argument("--cert", required=True)
p.add_argument("--key", required=True)
p.add_argument("--password", required=True)
args = p.parse_args()
os.makedirs(args.out, exist_ok=True)
lock = threading.Lock()


class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        rec = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "body": body.get_content() if body is not None else "",
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
        }
        with lock:
            n = len(os.listdir(args.out))
            path = os.path.join(args.out, f"{n:06}.json")
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(rec, f)
            os.rename(path + ".tmp", path)
        return "250 OK stored"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"sensor"
          and auth_data.password == args.password.encode())
    return AuthResult(success=ok)


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(args.cert, args.key)
controller = Controller(Handler(), hostname="127.0.0.1", port=args.port, tls_context=ctx,
                        require_starttls=True, authenticator=authenticator,
                        auth_require_tls=True, server_hostname="localhost")
controller.start()
print("READY", flush=True)
threading.Event().wait()
