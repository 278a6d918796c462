"""`make deploy` ships the zips `make package` wrote, byte for byte, without a prompt.

Runs `make -o package deploy` (the deploy recipe, with `make package`'s output already in place)
from a copy of the project whose target/lambda/<fn>/bootstrap.zip are random stand-ins, against
moto's S3 and CloudFormation, with no terminal on stdin. Then reads the template CloudFormation
got back from moto and checks that every function's code is an S3 object with exactly its zip's
bytes, and that nothing was built on the way (no .aws-sam).

The one change to samconfig.toml: moto's CloudFormation does not return the outputs of SAM's
managed-bucket stack, so the copy names a bucket (`s3_bucket`) instead of `resolve_s3`.

Run: scripts/with-moto .venv/bin/python tests/template/deploy_ships_the_packaged_zips.py
"""

import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import boto3
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "artifacts"
# The template's required parameters, as an operator gives them on a first deploy.
GIVEN = {
    **{name: f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/{secret}-AbCdEf"
       for name, secret in [
           ("DbSecretArn", "db"),
           ("DbMigrationSecretArn", "db-migration"),
           ("SigningKeySecretArn", "signing"),
           ("VerificationKeysSecretArn", "verification"),
           ("MfaKeysSecretArn", "mfa-keys"),
       ]},
    # A value with spaces, quoted as `make deploy PARAMETERS='... MailFrom="Example <...>"'` does.
    "MailFrom": "Example <no-reply@example.com>",
    "MailIdentity": "example.com",
    "AppUrl": "https://app.example.com",
}
PARAMETERS = " ".join(f'{name}="{value}"' if " " in value else f"{name}={value}" for name, value in GIVEN.items())


def main():
    results = []

    def check(name, condition, detail=""):
        results.append(condition)
        print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))

    # moto's CloudFormation reads a TemplateURL path-style only when the host is `localhost`.
    endpoint = os.environ["AWS_ENDPOINT_URL_SECRETS_MANAGER"].replace("127.0.0.1", "localhost")
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, SAM_CLI_TELEMETRY="0", PARAMETERS=PARAMETERS)
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)

    samconfig_path = ROOT / "samconfig.toml"
    samconfig = samconfig_path.read_text() if samconfig_path.exists() else ""
    for setting in ['stack_name = "auth"', 'capabilities = "CAPABILITY_IAM"', "resolve_s3 = true",
                    "confirm_changeset = false", 'template_file = "template.yaml"']:
        check(f"samconfig.toml sets {setting}", setting in samconfig.splitlines())

    with tempfile.TemporaryDirectory(prefix="auth-deploy.") as tmp:
        copy = Path(tmp)
        for name in ["Makefile", "template.yaml"]:
            shutil.copy(ROOT / name, copy / name)
        shutil.copytree(ROOT / "scripts", copy / "scripts")
        (copy / ".venv").symlink_to(ROOT / ".venv")
        (copy / "samconfig.toml").write_text(samconfig.replace("resolve_s3 = true", f's3_bucket = "{BUCKET}"'))
        zips = {}
        template = yaml_parse((ROOT / "template.yaml").read_text())
        code_uris = {
            name: resource["Properties"]["CodeUri"]
            for name, resource in template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"
        }
        for logical_id, uri in sorted(code_uris.items()):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr("bootstrap", os.urandom(4096))
            path = copy / uri
            path.parent.mkdir(parents=True)
            path.write_bytes(buffer.getvalue())
            zips[logical_id] = (uri, buffer.getvalue())

        boto3.client("s3", endpoint_url=endpoint).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": os.environ["AWS_REGION"]}
        )
        deploy = subprocess.run(
            ["make", "-o", "package", "deploy"],
            cwd=copy, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
        )
        output = deploy.stdout + deploy.stderr
        check("make deploy runs to the end without a terminal", deploy.returncode == 0, output[-3000:])
        check("make deploy builds nothing (no .aws-sam)", not (copy / ".aws-sam").exists())

        if deploy.returncode == 0:
            cloudformation = boto3.client("cloudformation", endpoint_url=endpoint)
            s3 = boto3.client("s3", endpoint_url=endpoint)
            body = cloudformation.get_template(StackName="auth", TemplateStage="Original")["TemplateBody"]
            deployed = body if isinstance(body, dict) else yaml_parse(body)
            functions = {
                name: resource["Properties"]
                for name, resource in deployed["Resources"].items()
                if resource["Type"] == "AWS::Serverless::Function"
            }
            shipped = {}
            for name, properties in functions.items():
                uri = properties.get("CodeUri", "")
                if isinstance(uri, str) and uri.startswith(f"s3://{BUCKET}/"):
                    key = uri[len(f"s3://{BUCKET}/"):]
                    shipped[name] = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            check("every function's code was uploaded to the artifact bucket", len(shipped) == len(zips) == len(functions),
                  {name: p.get("CodeUri") for name, p in functions.items()})
            for logical_id, (uri, data) in zips.items():
                check(f"{logical_id} runs exactly {uri}", shipped.get(logical_id) == data)
            stack = cloudformation.describe_stacks(StackName="auth")["Stacks"][0]
            given = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
            tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
            check("the stack is tagged application=auth-api (CloudFormation tags every resource that takes tags)",
                  tags.get("application") == "auth-api", tags)
            check("the operator's parameters reached the stack",
                  all(given.get(name) == value for name, value in GIVEN.items()), given)

    passed, failed = results.count(True), results.count(False)
    print(f"deploy: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
