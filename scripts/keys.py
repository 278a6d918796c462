"""The token keys and the MFA key ring in Secrets Manager (see scripts/keys for the commands)."""

import argparse
import base64
import json
import os
import secrets
import sys
import time

import boto3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

# One TTL (JWT_KEYS_TTL_SECONDS) for promote; one TTL + one access-token lifetime + the 30 s
# leeway for retire (the template's defaults).
PUBLISHED_FOR = 300
PROMOTED_FOR = 300 + 900 + 30


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def integer(value):
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def generate(algorithm, kid):
    """A private key (PKCS#8 PEM) and its public JWK."""
    if algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = key.public_key().public_numbers()
        jwk = {"kty": "RSA", "n": integer(numbers.n), "e": integer(numbers.e)}
    elif algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big")),
               "y": b64url(numbers.y.to_bytes(32, "big"))}
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    return {"kid": kid, "algorithm": algorithm, "private_key": pem}, jwk


def client():
    return boto3.client("secretsmanager", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER"))


def read(sm, secret):
    return json.loads(sm.get_secret_value(SecretId=secret)["SecretString"])


def write(sm, secret, value, create=False):
    text = json.dumps(value)
    if create:
        try:
            return sm.create_secret(Name=secret, SecretString=text)["ARN"]
        except sm.exceptions.ResourceExistsException:
            pass
    return sm.put_secret_value(SecretId=secret, SecretString=text)["ARN"]


def fail(message):
    print(f"keys: {message}", file=sys.stderr)
    sys.exit(1)


def exists(sm, secret):
    try:
        sm.describe_secret(SecretId=secret)
        return True
    except sm.exceptions.ResourceNotFoundException:
        return False


def new(args, sm):
    # Replacing the keys of a live deployment refuses every token it issued (and every session's
    # refresh token): only on purpose.
    existing = [s for s in (args.signing_secret, args.verification_secret) if exists(sm, s)]
    if existing and not args.force:
        fail(f"{' and '.join(existing)} already exist: replacing them would refuse every token and session "
             "issued with them. Rotate with publish/promote/retire, or pass --force to replace them anyway")
    current, jwk = generate(args.algorithm, args.kid)
    signing = {"current": current, "refresh_token_key": secrets.token_urlsafe(48)}
    arns = {"signing_secret_arn": write(sm, args.signing_secret, signing, create=True),
            "verification_secret_arn": write(sm, args.verification_secret, {"keys": [jwk]}, create=True)}
    print(json.dumps(arns))


def publish(args, sm):
    signing, verification = read(sm, args.signing_secret), read(sm, args.verification_secret)
    if "next" in signing:
        fail(f"key {signing['next']['kid']} is already published as next; promote it first")
    if any(key["kid"] == args.kid for key in verification["keys"]):
        fail(f"the verification secret already has a key {args.kid}")
    following, jwk = generate(args.algorithm, args.kid)
    # Verifiers first: nothing may sign with a key they do not know yet.
    write(sm, args.verification_secret, {"keys": [jwk] + verification["keys"]})
    signing["next"] = dict(following, published_at=int(time.time()))
    write(sm, args.signing_secret, signing)
    print(json.dumps({"next": args.kid}))


def promote(args, sm):
    signing = read(sm, args.signing_secret)
    following = signing.get("next")
    if following is None:
        fail("no next key: publish one first")
    age = time.time() - following["published_at"]
    if age < args.min_age:
        fail(f"key {following['kid']} was published {age:.0f} s ago; wait {args.min_age - age:.0f} s more")
    previous = signing["current"]["kid"]
    signing["current"] = {k: following[k] for k in ("kid", "algorithm", "private_key")}
    signing["promoted_at"] = int(time.time())
    del signing["next"]
    write(sm, args.signing_secret, signing)
    print(json.dumps({"current": following["kid"], "previous": previous}))


def retire(args, sm):
    signing, verification = read(sm, args.signing_secret), read(sm, args.verification_secret)
    age = time.time() - signing.get("promoted_at", 0)
    if age < args.min_age:
        fail(f"the current key was promoted {age:.0f} s ago; wait {args.min_age - age:.0f} s more")
    keep = {signing["current"]["kid"]} | ({signing["next"]["kid"]} if "next" in signing else set())
    if not any(key["kid"] in keep for key in verification["keys"]):
        fail("the verification secret lacks the current key; refusing to leave it without one")
    kept = [key for key in verification["keys"] if key["kid"] in keep]
    dropped = [key["kid"] for key in verification["keys"] if key["kid"] not in keep]
    write(sm, args.verification_secret, {"keys": kept})
    print(json.dumps({"kept": [key["kid"] for key in kept], "dropped": dropped}))


def mfa_key():
    """A new AES-256 key of the MFA ring: 32 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def mfa_new(args, sm):
    # Every enrolled factor's secret is sealed under a key of the ring: a new ring opens none of
    # them, and their users could no longer sign in with their second factor.
    if exists(sm, args.mfa_secret) and not args.force:
        fail(f"{args.mfa_secret} already exists: replacing it would leave every enrolled second factor "
             "unreadable. Rotate with mfa-rotate, or pass --force to replace it anyway")
    ring = {"current": args.key_id, "keys": {args.key_id: mfa_key()}}
    print(json.dumps({"mfa_secret_arn": write(sm, args.mfa_secret, ring, create=True)}))


def mfa_rotate(args, sm):
    ring = read(sm, args.mfa_secret)
    if args.key_id in ring["keys"]:
        fail(f"the MFA key ring already has a key {args.key_id}")
    previous = ring["current"]
    # The old keys stay: each still opens the secrets it sealed. A function that meets a secret
    # sealed under a key its ring lacks reads the ring again, so no order of reads breaks.
    ring["keys"][args.key_id] = mfa_key()
    ring["current"] = args.key_id
    write(sm, args.mfa_secret, ring)
    print(json.dumps({"current": args.key_id, "previous": previous, "keys": sorted(ring["keys"])}))


def mfa_show(args, sm):
    ring = read(sm, args.mfa_secret)
    print(json.dumps({"current": ring["current"], "keys": sorted(ring["keys"])}))


def show(args, sm):
    signing, verification = read(sm, args.signing_secret), read(sm, args.verification_secret)
    print(json.dumps({"current": signing["current"]["kid"], "next": signing.get("next", {}).get("kid"),
                      "published": [key["kid"] for key in verification["keys"]]}))


def main():
    parser = argparse.ArgumentParser(prog="scripts/keys")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, needs_verification in [("new", True), ("publish", True), ("promote", False),
                                      ("retire", True), ("show", True)]:
        command = commands.add_parser(name)
        command.add_argument("--signing-secret", required=True, help="name or ARN")
        if needs_verification:
            command.add_argument("--verification-secret", required=True, help="name or ARN")
        if name == "new":
            command.add_argument("--force", action="store_true",
                                 help="replace secrets that already exist (every live token stops working)")
        if name in ("new", "publish"):
            command.add_argument("--algorithm", choices=["RS256", "ES256", "EdDSA"], default="RS256")
            command.add_argument("--kid", default=time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime()))
        if name in ("promote", "retire"):
            default = PUBLISHED_FOR if name == "promote" else PROMOTED_FOR
            command.add_argument("--min-age", type=int, default=default, help=f"seconds (default {default})")
    for name in ("mfa-new", "mfa-rotate", "mfa-show"):
        command = commands.add_parser(name)
        command.add_argument("--mfa-secret", required=True, help="name or ARN")
        if name == "mfa-new":
            command.add_argument("--force", action="store_true",
                                 help="replace a ring that already exists (every enrolled factor stops opening)")
        if name in ("mfa-new", "mfa-rotate"):
            command.add_argument("--key-id", default=time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime()))
    args = parser.parse_args()
    {"new": new, "publish": publish, "promote": promote, "retire": retire, "show": show,
     "mfa-new": mfa_new, "mfa-rotate": mfa_rotate, "mfa-show": mfa_show}[args.command](args, client())


if __name__ == "__main__":
    main()
