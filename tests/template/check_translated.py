"""Transforms template.yaml with the SAM translator, offline, and checks what CloudFormation
would get: every function with its runtime, architecture, code (the zip `make package` writes),
routes and least-privilege policies (a verifier never reads the signing secret), the required
parameters, the CORS default, the health schedule and the alarms. cfn-lint alone does not see
inside SAM resources (a wrong Runtime or Method passes it), so this is the check that does.

Run: .venv/bin/python tests/template/check_translated.py [template.yaml]
"""

import copy
import json
import os
import re
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

DB_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/db-AbCdEf"
SIGNING_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/signing-AbCdEf"
VERIFICATION_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/verification-AbCdEf"
PARAMETERS = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "auth",
    "DbSecretArn": DB_SECRET,
    "SigningKeySecretArn": SIGNING_SECRET,
    "VerificationKeysSecretArn": VERIFICATION_SECRET,
    "SubnetIds": "subnet-1,subnet-2",
    "SecurityGroupIds": "sg-1",
}
# secret ARN -> the environment variable that names it to a function
SECRET_VARIABLES = {
    DB_SECRET: "DB_SECRET_ARN",
    SIGNING_SECRET: "JWT_SIGNING_KEY_SECRET_ARN",
    VERIFICATION_SECRET: "JWT_VERIFICATION_KEYS_SECRET_ARN",
}
REQUIRED_SECRET_PARAMETERS = ["DbSecretArn", "SigningKeySecretArn", "VerificationKeysSecretArn"]

# logical id -> (binary, routes, secrets it may read, in a VPC)
FUNCTIONS = {
    "SignupFunction": ("signup", {("POST", "/auth/signup")}, {DB_SECRET, SIGNING_SECRET}, True),
    "LoginFunction": ("login", {("POST", "/auth/login")}, {DB_SECRET, SIGNING_SECRET}, True),
    "RefreshFunction": ("refresh", {("POST", "/auth/refresh")}, {DB_SECRET, SIGNING_SECRET}, True),
    "MeFunction": ("me", {("GET", "/auth/me")}, {DB_SECRET, VERIFICATION_SECRET}, True),
    "LogoutFunction": ("logout", {("POST", "/auth/logout")}, {DB_SECRET}, True),
    "HealthFunction": ("health", {("GET", "/health")}, {DB_SECRET}, True),
    "JwksFunction": (
        "jwks",
        {("GET", "/.well-known/jwks.json"), ("GET", "/.well-known/openid-configuration")},
        {VERIFICATION_SECRET},
        False,
    ),
    "MigrateFunction": ("migrate", set(), {DB_SECRET}, True),
}
VERIFIERS = ["MeFunction", "JwksFunction"]
# Environment every function gets (Globals), with the value it has by default.
GLOBAL_VARIABLES = {
    "DB_SSLMODE": {"Ref": "DbSslMode"},
    "SESSION_MAX_LIFETIME_SECONDS": {"Ref": "SessionMaxLifetimeSeconds"},
}


def benchmarked_sizes(path):
    """function name -> the MemorySize `make bench`'s power tuning chose (BENCHMARKS.md)."""
    sizes = {}
    with open(path) as handle:
        text = handle.read()
    table = text.split("| function | MemorySize |", 1)[1] if "| function | MemorySize |" in text else ""
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[1].isdigit():
            break
        sizes[cells[0]] = int(cells[1])
    return sizes


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


def evaluate(value, parameters, conditions):
    """The value CloudFormation would use: Ref, Fn::If, Fn::Equals, Fn::Not and Fn::Join over
    parameters (a CommaDelimitedList is a list); `None` stands for AWS::NoValue."""
    if isinstance(value, list):
        items = [evaluate(item, parameters, conditions) for item in value]
        return [item for item in items if item is not None]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, argument), = value.items()
        if key == "Ref":
            return None if argument == "AWS::NoValue" else parameters[argument]
        if key == "Condition":
            return conditions[argument]
        if key == "Fn::If":
            name, when_true, when_false = argument
            return evaluate(when_true if conditions[name] else when_false, parameters, conditions)
        if key == "Fn::Equals":
            left, right = (evaluate(side, parameters, conditions) for side in argument)
            return left == right
        if key == "Fn::Not":
            return not evaluate(argument[0], parameters, conditions)
        if key == "Fn::Join":
            separator, items = argument
            return separator.join(evaluate(items, parameters, conditions))
    items = {key: evaluate(item, parameters, conditions) for key, item in value.items()}
    return {key: item for key, item in items.items() if item is not None}


def deployed_values(template, overrides):
    """Parameter values (defaults, then `overrides`) and the conditions they make true."""
    parameters = {"AWS::NoValue": None}
    for name, declaration in template["Parameters"].items():
        value = overrides.get(name, declaration.get("Default"))
        if declaration["Type"] == "CommaDelimitedList" and isinstance(value, str):
            value = value.split(",")
        parameters[name] = value
    conditions = {}
    for name, condition in template.get("Conditions", {}).items():
        conditions[name] = evaluate(condition, parameters, conditions)
    return parameters, conditions


def cors_of(output, parameters, conditions):
    """The HTTP API's CORS configuration as deployed (None when it has none)."""
    api = next(r for r in output["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api")
    cors = api["Properties"]["Body"].get("x-amazon-apigateway-cors")
    return None if cors is None else evaluate(cors, parameters, conditions)


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
        source = yaml_parse(handle.read())
    template = copy.deepcopy(source)
    global_function = template.get("Globals", {}).get("Function", {})
    code_uris = {}
    for name in FUNCTIONS:
        resource = template["Resources"][name]
        code_uris[name] = (resource, resource["Properties"].get("CodeUri", global_function.get("CodeUri")))
    # What `sam deploy` does before CloudFormation sees the template: each local zip (or folder)
    # is uploaded and its CodeUri replaced by the object's S3 URI.
    for name, (resource, code_uri) in code_uris.items():
        resource["Properties"]["CodeUri"] = f"s3://artifacts/{code_uri}"
    global_function.pop("CodeUri", None)
    output = transform(copy.deepcopy(template), PARAMETERS, OfflinePolicies())
    resources = output["Resources"]
    results = []

    def check(name, condition, detail=""):
        results.append(condition)
        print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))

    declared = source.get("Parameters", {})
    for parameter in REQUIRED_SECRET_PARAMETERS:
        declaration = declared.get(parameter, {})
        pattern = declaration.get("AllowedPattern", "")
        check(f"parameter {parameter} exists", parameter in declared)
        check(f"parameter {parameter} is required (no Default)", "Default" not in declaration, declaration.get("Default"))
        accepted = [value for value in ["", "arn:aws:secretsmanager:", "not-an-arn",
                                         "arn:aws:s3:::bucket/key",
                                         "arn:aws:secretsmanager:eu-west-1:123456789012:secret:"]
                    if re.fullmatch(pattern, value)]
        check(f"parameter {parameter} refuses anything but a full secret ARN", pattern and not accepted, accepted)
        check(f"parameter {parameter} accepts a full secret ARN",
              bool(pattern) and re.fullmatch(pattern, PARAMETERS[parameter]) is not None, pattern)
    ssl = declared.get("DbSslMode", {})
    check("parameter DbSslMode defaults to require and allows only require, verify-ca, verify-full",
          ssl.get("Default") == "require" and sorted(ssl.get("AllowedValues", [])) == ["require", "verify-ca", "verify-full"],
          ssl)
    lifetime = declared.get("SessionMaxLifetimeSeconds", {})
    check("parameter SessionMaxLifetimeSeconds defaults to 90 days", str(lifetime.get("Default")) == "7776000", lifetime)

    defaults, default_conditions = deployed_values(source, PARAMETERS)
    cors = cors_of(output, defaults, default_conditions)
    check("by default the API has no CORS configuration (browsers refuse cross-origin calls)", cors is None, cors)
    origins = "https://app.example.com,https://admin.example.com"
    # CloudFormation hands a transform a CommaDelimitedList's value as a list.
    with_origins = dict(PARAMETERS, CorsOrigins=origins.split(","))
    listed, listed_conditions = deployed_values(source, with_origins)
    # The translator substitutes parameter values it is given, so this one is translated again.
    cors = cors_of(transform(copy.deepcopy(template), with_origins, OfflinePolicies()), listed, listed_conditions) or {}
    check("listed origins, and only those, may call the API from a browser",
          cors.get("allowOrigins") == origins.split(",") and "*" not in json.dumps(cors), cors)

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
        resource, code_uri = code_uris[name]
        zip_path = f"target/lambda/{binary}/bootstrap.zip"
        check(f"{name} ships {zip_path}, what `make package` writes", code_uri == zip_path, code_uri)
        check(f"{name} has no `sam build` metadata", "Metadata" not in resource, resource.get("Metadata"))
        check(f"{name} {'is' if vpc else 'is not'} in the VPC", ("VpcConfig" in props) == vpc)
        role = resources.get(f"{name}Role", {"Properties": {}})
        readable = secrets_readable_by(role)
        check(f"{name} may read exactly {sorted(secrets)}", readable == secrets, sorted(readable))
        if name in VERIFIERS:
            check(f"{name} (a verifier) may not read the signing secret", SIGNING_SECRET not in readable, sorted(readable))
        variables = props.get("Environment", {}).get("Variables", {})
        for secret, variable in SECRET_VARIABLES.items():
            told = variable in variables
            check(f"{name} is told {variable} iff it may read that secret", told == (secret in secrets), variables)
            if told:
                value = resolve(variables[variable])
                check(f"{name}'s {variable} names that secret", value == secret, value)
        check(f"{name} is told no obsolete JWT_KEYS_SECRET_ARN", "JWT_KEYS_SECRET_ARN" not in variables)
        for variable, value in GLOBAL_VARIABLES.items():
            check(f"{name} gets {variable} from {value['Ref']}", variables.get(variable) == value, variables.get(variable))

    benchmarks = os.path.join(os.path.dirname(os.path.abspath(path)), "BENCHMARKS.md")
    chosen = benchmarked_sizes(benchmarks)
    check("BENCHMARKS.md chooses a MemorySize for every API function",
          set(chosen) == {binary for name, (binary, *_) in FUNCTIONS.items() if name != "MigrateFunction"}, chosen)
    for name, (binary, *_) in FUNCTIONS.items():
        # Lambda's default, 128 MB, when the template sets none (migrate runs once per deploy).
        size = resources.get(name, {}).get("Properties", {}).get("MemorySize", 128)
        check(f"{name}'s MemorySize is the size the power tuning chose ({chosen.get(binary, 128)} MB)",
              size == chosen.get(binary, 128), size)

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
