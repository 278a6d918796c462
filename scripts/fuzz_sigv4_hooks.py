"""schemathesis hooks for scripts/fuzz-api: signs every request to the admin API (/admin/...),
whose routes need AWS_IAM, with AWS Signature Version 4 as `scripts/admin` does (botocore's
SigV4Auth, service execute-api), from the credentials file ADMIN_CREDENTIALS names (make run's
.local/admin-credentials.json). The request is signed as requests prepared it, so the signature
covers exactly what is sent. Other routes are left as they are."""

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class SignedForExecuteApi(requests.auth.AuthBase):
    def __init__(self, credentials: Credentials):
        self.credentials = credentials

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        headers = {"Host": urlsplit(prepared.url).netloc}
        for name in ("Content-Type",):
            if name in prepared.headers:
                headers[name] = prepared.headers[name]
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        signed = AWSRequest(method=prepared.method, url=prepared.url, data=body, headers=headers)
        SigV4Auth(self.credentials, "execute-api", "us-east-1").add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "Host"):
            prepared.headers[name] = signed.headers[name]
        return prepared


def _credentials() -> Credentials:
    keys = json.loads(Path(os.environ["ADMIN_CREDENTIALS"]).read_text())
    return Credentials(keys["access_key_id"], keys["secret_access_key"])


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path.startswith("/admin/"):
        kwargs["auth"] = SignedForExecuteApi(_credentials())
