"""schemathesis hooks for scripts/fuzz-api: signs every request to the admin API (/admin/...),
whose routes need AWS_IAM, with AWS Signature Version 4 as `scripts/admin` does (botocore's
SigV4Auth, service execute-api, the region make run serves in: AWS_REGION), from the credentials
file ADMIN_CREDENTIALS names (make run's .local/admin-credentials.json). The request is signed as
requests prepared it, so the signature covers exactly what is sent. A case that leaves the
Authorization header out (the check that a missing one is refused) is sent unsigned. A signed
request the gateway refuses fails the run: the fuzzer would otherwise only ever meet the
gateway's 403."""

import json
import os
from pathlib import Path
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class SignedForExecuteApi(requests.auth.AuthBase):
    def __init__(self, credentials: Credentials):
        self.credentials = credentials

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        # The query as SigV4 canonicalises it (each name and value decoded, then encoded with
        # only unreserved characters left), sent as signed: botocore signs a URL's query as it
        # finds it, where the gateway (and the emulator) canonicalise what they receive.
        parts = urlsplit(prepared.url)
        pairs = (pair.partition("=") for pair in parts.query.split("&") if pair)
        query = "&".join(f"{_encode(name)}={_encode(value)}" for name, _, value in pairs)
        prepared.url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
        headers = {"Host": parts.netloc}
        for name in ("Content-Type",):
            if name in prepared.headers:
                headers[name] = prepared.headers[name]
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        signed = AWSRequest(method=prepared.method, url=prepared.url, data=body, headers=headers)
        SigV4Auth(self.credentials, "execute-api", os.environ.get("AWS_REGION", "us-east-1")).add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "Host"):
            prepared.headers[name] = signed.headers[name]
        return prepared


def _encode(text: str) -> str:
    return quote(unquote_plus(text), safe="-_.~")


def _credentials() -> Credentials:
    keys = json.loads(Path(os.environ["ADMIN_CREDENTIALS"]).read_text())
    return Credentials(keys["access_key_id"], keys["secret_access_key"])


# The cases this hook signed, by id: their answers are checked in after_call.
_SIGNED = set()


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = {name.lower() for name in (case.headers or {})}
    if case.operation.path.startswith("/admin/") and "authorization" in headers:
        kwargs["auth"] = SignedForExecuteApi(_credentials())
        _SIGNED.add(id(case))


@schemathesis.hook
def after_call(context, case, response):
    if id(case) not in _SIGNED:
        return
    _SIGNED.discard(id(case))
    if response.status_code == 403 and "message" in (response.json() if response.content else {}):
        raise AssertionError(f"the gateway refused a signed request: {response.content!r}")
