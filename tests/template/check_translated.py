"""Transforms template.yaml with the SAM translator, offline, and checks what CloudFormation
would get: every function with its runtime, architecture, routes and least-privilege policies,
the health schedule and the alarms. cfn-lint alone does not see inside SAM resources (a wrong
Runtime or Method passes it), so this is the check that does.

Run: .venv/bin/python tests/template/check_translated.py [template.yaml]
"""

import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

DB_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/db-AbCdEf"
KEYS_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/keys-AbCdEf"
PARAMETERS = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "auth",
    "DbSecretArn": DB_SECRET,
    "SigningKeysSecretArn": KEYS_SECRET,
    "SubnetIds": "subnet-1,subnet-2",
    "SecurityGroupIds": "sg-1",
}

# logical id -> (binary, routes, secrets it may read, in a VPC)
FUNCTIONS = {
    "SignupFunction": ("signup", {("POST", "/auth/signup")}, {DB_SECRET, KEYS_SECRET}, True),
    "LoginFunction": ("login", {("POST", "/auth/login")}, {DB_SECRET, KEYS_SECRET}, True),
    "RefreshFunction": ("refresh", {("POST", "/auth/refresh")}, {DB_SECRET, KEYS_SECRET}, True),
    "MeFunction": ("me", {("GET", "/auth/me")}, {DB_SECRET, KEYS_SECRET}, True),
    "LogoutFunction": ("logout", {("POST", "/auth/logout")}, {DB_SECRET}, True),
    "HealthFunction": ("health", {("GET", "/health")}, {DB_SECRET}, True),
    "JwksFunction": (
        "jwks",
        {("GET", "/.well-known/jwks.json"), ("GET", "/.well-known/openid-configuration")},
        {KEYS_SECRET},
        False,
    ),
    "MigrateFunction": ("migrate", set(), {DB_SECRET}, True),
}


class OfflinePolicies:
    """The translator asks IAM for managed-policy ARNs only for names it does not know."""

    def load(self):
        return {}


def secrets_readable_by(role):
    arns = set()
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "secretsmanager:GetSecretValue" in actions:
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                arns.update(resolve(resource) for resource in resources)
    return arns


def resolve(value):
    """A policy resource as deployed: SAM writes `{"Fn::Sub": ["${secretArn}", {"secretArn": {"Ref": P}}]}`."""
    if isinstance(value, str):
        return value
    refs = [ref for ref in json.dumps(value).split('"Ref": "')[1:]]
    names = {ref.split('"')[0] for ref in refs}
    if len(names) == 1:
        return PARAMETERS.get(names.pop(), json.dumps(value))
    return json.dumps(value)


def routes_to(api_body):
    """(method, path) -> the function logical id its integration invokes."""
    routes = {}
    for path, methods in api_body["paths"].items():
        for method, operation in methods.items():
            uri = json.dumps(operation["x-amazon-apigateway-integration"]["uri"])
            target = next((name for name in FUNCTIONS if f"${{{name}.Arn}}" in uri), None)
            routes[(method.upper(), path)] = target
    return routes


def main(path):
    with open(path) as handle:
        template = yaml_parse(handle.read())
    metadata = {name: template["Resources"][name].get("Metadata", {}) for name in FUNCTIONS}
    # What `sam build && sam package` does before CloudFormation sees the template.
    template["Globals"]["Function"]["CodeUri"] = "s3://artifacts/auth.zip"
    for name, (binary, _, _, _) in FUNCTIONS.items():
        template["Resources"][name]["Properties"]["CodeUri"] = f"s3://artifacts/{binary}.zip"
    output = transform(template, PARAMETERS, OfflinePolicies())
    resources = output["Resources"]
    results = []

    def check(name, condition, detail=""):
        results.append(condition)
        print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))

    apis = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    check("one HTTP API", len(apis) == 1, f"{len(apis)} APIs")
    routes = routes_to(apis[0]["Properties"]["Body"]) if apis else {}
    expected_routes = {route: name for name, (_, rs, _, _) in FUNCTIONS.items() for route in rs}
    check("the API has exactly the contract's routes", routes == expected_routes, f"{routes} != {expected_routes}")

    for name, (binary, _, secrets, vpc) in FUNCTIONS.items():
        function = resources.get(name, {})
        props = function.get("Properties", {})
        check(f"{name} is a Lambda function", function.get("Type") == "AWS::Lambda::Function")
        check(f"{name} runs provided.al2023", props.get("Runtime") == "provided.al2023", props.get("Runtime"))
        check(f"{name} is arm64", props.get("Architectures") == ["arm64"], props.get("Architectures"))
        check(f"{name} handler is bootstrap", props.get("Handler") == "bootstrap", props.get("Handler"))
        built = metadata[name].get("BuildProperties", {}).get("Binary")
        check(f"{name} builds the {binary} binary", metadata[name].get("BuildMethod") == "rust-cargolambda" and built == binary, built)
        check(f"{name} {'is' if vpc else 'is not'} in the VPC", ("VpcConfig" in props) == vpc)
        role = resources.get(f"{name}Role", {"Properties": {}})
        readable = secrets_readable_by(role)
        check(f"{name} may read exactly {sorted(secrets)}", readable == secrets, sorted(readable))
        variables = props.get("Environment", {}).get("Variables", {})
        needs_db, needs_keys = DB_SECRET in secrets, KEYS_SECRET in secrets
        check(f"{name} is told the database secret iff it may read it", ("DB_SECRET_ARN" in variables) == needs_db)
        check(f"{name} is told the key secret iff it may read it", ("JWT_KEYS_SECRET_ARN" in variables) == needs_keys)

    rules = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    health_targets = [
        t for r in rules for t in r["Properties"].get("Targets", []) if "HealthFunction" in json.dumps(t["Arn"])
    ]
    check("an EventBridge schedule invokes the health function", len(health_targets) == 1, rules)
    alarms = {r["Properties"]["MetricName"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    check("alarms watch DatabaseHealthy, function Errors and API 5xx", {"DatabaseHealthy", "Errors", "5xx"} <= alarms, alarms)
    outputs = set(output.get("Outputs", {}))
    check("outputs name the API URL and every function", {"ApiUrl"} | {f"{n}Name" for n in FUNCTIONS} <= outputs, outputs)

    passed, failed = results.count(True), results.count(False)
    print(f"template: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
