"""Transforms template.yaml with the SAM translator, offline, and checks what CloudFormation
would get. template.yaml is the one list of the functions: this script names none of them. It
reads each function from the source template (its binary from `CodeUri:
target/lambda/<binary>/bootstrap.zip`, its HttpApi routes, the secret parameters its
environment `!Ref`s, whether it has a VpcConfig, whether it is told MAIL_FROM), then checks the
translated template against that: runtime, architecture, code (the zip `make package` writes),
routes, and least privilege (each function may read exactly the secrets its environment names;
only the functions whose code both checks an access token and signs one, `Keys::SignAndVerify`
in their handler's NEEDS, name both the signing and the verification secret; only the functions
told MAIL_FROM may call SES, and only to send from MailIdentity), the required parameters, the CORS
default, the schedule, the alarms and the migration custom resource. cfn-lint alone does not see
inside SAM resources (a wrong Runtime or Method passes it), so this is the check that does.

Run: .venv/bin/python tests/template/check_translated.py [template.yaml]
"""

import copy
import fnmatch
import json
import os
import re
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

DB_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/db-AbCdEf"
MIGRATION_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/db-migration-AbCdEf"
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SIGNING_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/signing-AbCdEf"
VERIFICATION_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/verification-AbCdEf"
MFA_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/mfa-keys-AbCdEf"
PARAMETERS = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "auth",
    "DbSecretArn": DB_SECRET,
    "DbMigrationSecretArn": MIGRATION_SECRET,
    "SigningKeySecretArn": SIGNING_SECRET,
    "VerificationKeysSecretArn": VERIFICATION_SECRET,
    "MfaKeysSecretArn": MFA_SECRET,
    "SubnetIds": "subnet-1,subnet-2",
    "SecurityGroupIds": "sg-1",
    "MailFrom": "Example <no-reply@example.com>",
    "MailIdentity": "example.com",
    "AppUrl": "https://app.example.com",
}
REQUIRED_SECRET_PARAMETERS = ["DbSecretArn", "DbMigrationSecretArn", "SigningKeySecretArn", "VerificationKeysSecretArn",
                              "MfaKeysSecretArn"]
# secret ARN -> the parameter that names it (a function's environment `!Ref`s the parameter)
SECRET_PARAMETERS = {PARAMETERS[name]: name for name in REQUIRED_SECRET_PARAMETERS}
# The secrets a function may read only from inside the VPC (where the database is).
DATABASE_SECRETS = {DB_SECRET, MIGRATION_SECRET}
# secret ARN -> the environment variable that names it to a function
SECRET_VARIABLES = {
    DB_SECRET: "DB_SECRET_ARN",
    SIGNING_SECRET: "JWT_SIGNING_KEY_SECRET_ARN",
    VERIFICATION_SECRET: "JWT_VERIFICATION_KEYS_SECRET_ARN",
    MFA_SECRET: "MFA_KEYS_SECRET_ARN",
}
# The migration function (the one the stack's custom resource invokes) connects as the schema
# owner (DB_SECRET_ARN) and reads the application secret only for the role it grants to
# (DB_APPLICATION_SECRET_ARN).
MIGRATION_SECRET_VARIABLES = {MIGRATION_SECRET: "DB_SECRET_ARN", DB_SECRET: "DB_APPLICATION_SECRET_ARN"}
ALL_SECRET_VARIABLES = set(SECRET_VARIABLES.values()) | set(MIGRATION_SECRET_VARIABLES.values())
# The mail identity's ARN as deployed with PARAMETERS: the one resource ses:SendEmail may name.
MAIL_IDENTITY_ARN = "arn:aws:ses:eu-west-1:123456789012:identity/example.com"
# The mail settings (variable -> the parameter it names), told to the sending functions only: a
# function is a sending function when its environment has MAIL_FROM.
MAIL_VARIABLES = {"MAIL_FROM": "MailFrom", "APP_URL": "AppUrl", "MAIL_HOURLY_LIMIT": "MailHourlyLimit",
                  "MAIL_SOURCE_HOURLY_LIMIT": "MailRequestsPerSource"}
# Environment every function gets (Globals), with the value it has by default.
GLOBAL_VARIABLES = {
    "DB_SSLMODE": {"Ref": "DbSslMode"},
    "DB_SSL_ROOT_CERT": {"Ref": "DbSslRootCert"},
    "DB_PORT": {"Ref": "DbPort"},
    "DB_NAME": {"Ref": "DbName"},
    "SESSION_MAX_LIFETIME_SECONDS": {"Ref": "SessionMaxLifetimeSeconds"},
}
FUNCTION_TYPE = "AWS::Serverless::Function"
# What `make package` writes for a binary, and so the only CodeUri a function may have.
PACKAGED_ZIP = re.compile(r"target/lambda/([a-z0-9][a-z0-9-]*)/bootstrap\.zip")
# How the custom metrics are namespaced (Namespace of the alarms on what the functions write).
METRICS_NAMESPACE = {"Ref": "MetricsNamespace"}


def refs_in(value):
    """The names a template fragment `Ref`s (or `${...}`s in an Fn::Sub)."""
    if isinstance(value, list):
        return set().union(*(refs_in(item) for item in value))
    if not isinstance(value, dict):
        return set()
    found = set()
    for key, argument in value.items():
        if key == "Ref" and isinstance(argument, str):
            found.add(argument)
        elif key == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            found |= set(re.findall(r"\$\{([^}!.]+)\}", text))
            found |= refs_in(argument[1:] if isinstance(argument, list) else [])
        else:
            found |= refs_in(argument)
    return found


class Function:
    """A function of the source template, as the checks read it."""

    def __init__(self, name, resource, global_function):
        properties = resource.get("Properties", {})
        self.name = name
        self.resource = resource
        self.properties = properties
        self.code_uri = properties.get("CodeUri", global_function.get("CodeUri"))
        packaged = PACKAGED_ZIP.fullmatch(self.code_uri) if isinstance(self.code_uri, str) else None
        self.binary = packaged[1] if packaged else None
        events = list((properties.get("Events") or {}).values())
        # An HttpApi event without Method or Path is the API's catch-all.
        self.routes = {(e.get("Properties", {}).get("Method", "ANY").upper(), e.get("Properties", {}).get("Path", "$default"))
                       for e in events if e.get("Type") == "HttpApi"}
        self.scheduled = any(e.get("Type") in ("Schedule", "ScheduleV2") for e in events)
        self.variables = dict(global_function.get("Environment", {}).get("Variables", {}),
                              **properties.get("Environment", {}).get("Variables", {}))
        # The secrets its environment names: every secret parameter a variable `!Ref`s.
        self.secrets = {PARAMETERS[p] for value in self.variables.values() for p in refs_in(value)
                        if p in REQUIRED_SECRET_PARAMETERS}
        self.vpc = "VpcConfig" in properties or "VpcConfig" in global_function
        self.mailer = "MAIL_FROM" in self.variables


def token_keys_of(root, functions):
    """logical id -> the `Keys::` variant of the NEEDS of the handler its binary runs
    (functions/src/bin/<binary>.rs names `<module>::NEEDS`; shared/src/handlers/<module>.rs
    declares it), None when the code cannot be read that way. The code decides which token keys
    a function holds (tests/e2e/house.rs holds the template to it); this reads it only to know
    which functions may name both key secrets."""
    keys = {}
    for name, function in functions.items():
        keys[name] = None
        try:
            with open(os.path.join(root, "functions", "src", "bin", f"{function.binary}.rs")) as handle:
                module = re.search(r"\b(\w+)::NEEDS\b", handle.read())
            with open(os.path.join(root, "shared", "src", "handlers", f"{module[1]}.rs")) as handle:
                needs = re.search(r"pub const NEEDS: Needs = Needs \{[^}]*\bkeys: Keys::(\w+)", handle.read())
            keys[name] = needs[1]
        except (OSError, TypeError):
            pass
    return keys


def source_functions(source):
    """logical id -> Function, for every AWS::Serverless::Function of the source template."""
    global_function = source.get("Globals", {}).get("Function", {})
    return {name: Function(name, resource, global_function) for name, resource in source["Resources"].items()
            if resource.get("Type") == FUNCTION_TYPE}


def custom_resources(resources):
    return {name: r for name, r in resources.items()
            if r.get("Type") == "AWS::CloudFormation::CustomResource" or r.get("Type", "").startswith("Custom::")}


def referenced_function(value, functions):
    """The function a ServiceToken references in the source template: `!Ref F`, `!Ref F.Alias`
    (SAM's published alias) or `!GetAtt F.Arn`; None when it names no function."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    (key, argument), = value.items()
    if key == "Ref" and isinstance(argument, str):
        target = argument.split(".")[0]
    elif key == "Fn::GetAtt":
        target = (argument if isinstance(argument, list) else argument.split("."))[0]
    else:
        return None
    return target if target in functions else None


def migration_function(source, functions):
    """The migration function: the one function a custom resource's ServiceToken references."""
    targets = {referenced_function(r.get("Properties", {}).get("ServiceToken"), functions)
               for r in custom_resources(source["Resources"]).values()} - {None}
    return targets.pop() if len(targets) == 1 else None


def power_tuned_binaries(path):
    """The binaries section 9 of BENCHMARKS.md (power tuning) chose a MemorySize for, with that
    size: the first two cells of each row of its `| function | MemorySize |` table. None without
    the file or section."""
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        text = handle.read()
    section = re.search(r"^## 9\.[^\n]*power tuning[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S | re.I)
    if section is None:
        return None
    table = section[1].split("| function | MemorySize |", 1)
    binaries = {}
    for line in (table[1].splitlines()[2:] if len(table) == 2 else []):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.strip().startswith("|") or len(cells) < 2 or not cells[1].isdigit():
            break
        binaries[cells[0]] = int(cells[1])
    return binaries


class OfflinePolicies:
    """The translator asks IAM for managed-policy ARNs only for names it does not know."""

    def load(self):
        return {}


def checker():
    """A `check(name, condition, detail)` that prints ok or FAIL, and the results it keeps."""
    results = []

    def check(name, condition, detail=""):
        results.append(bool(condition))
        print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))

    return check, results


def role_of(resources, name):
    """The logical id of the role a translated function runs as (SAM's `Fn::GetAtt [Role, Arn]`)."""
    role = resources.get(name, {}).get("Properties", {}).get("Role")
    if isinstance(role, dict) and isinstance(role.get("Fn::GetAtt"), list):
        return role["Fn::GetAtt"][0]
    return None


def policy_documents(resources, role):
    """The role's inline policies and those of the IAM policy resources attached to it."""
    documents = [p["PolicyDocument"] for p in resources.get(role, {}).get("Properties", {}).get("Policies", [])]
    for resource in resources.values():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") \
                and {"Ref": role} in resource["Properties"].get("Roles", []):
            documents.append(resource["Properties"]["PolicyDocument"])
    return documents


def as_list(value):
    return value if isinstance(value, list) else [value]


def secrets_readable_by(resources, role):
    """The secrets (as deployed with PARAMETERS) the role may read: every resource of an Allow
    statement whose actions match secretsmanager:GetSecretValue (wildcards included)."""
    arns = set()
    for document in policy_documents(resources, role):
        for statement in as_list(document.get("Statement", [])):
            actions = [a.lower() for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
            if statement.get("Effect") == "Allow" and any(
                    fnmatch.fnmatchcase("secretsmanager:getsecretvalue", action) for action in actions):
                arns.update(resolve(resource) for resource in as_list(statement.get("Resource", [])))
    return arns


def secret_label(secret):
    return SECRET_PARAMETERS.get(secret, str(secret))


def labels(secrets):
    return sorted(secret_label(secret) for secret in secrets)


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
    """The value CloudFormation would use: Ref, Fn::If, Fn::Equals, Fn::Not, Fn::Split, Fn::Select and
    Fn::Join over
    parameters (a CommaDelimitedList is a list); `None` stands for AWS::NoValue."""
    if isinstance(value, list):
        items = [evaluate(item, parameters, conditions) for item in value]
        return [item for item in items if item is not None]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, argument), = value.items()
        if key == "Ref" and argument not in parameters:
            return value  # a resource's
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
        if key == "Fn::And":
            return all(evaluate(item, parameters, conditions) for item in argument)
        if key == "Fn::Sub" and isinstance(argument, str):
            names = re.findall(r"\$\{([^}]+)\}", argument)
            if all(isinstance(parameters.get(name), str) for name in names):
                return re.sub(r"\$\{([^}]+)\}", lambda match: parameters[match[1]], argument)
            return value  # names a resource or a pseudo parameter
        if key == "Fn::Split":
            separator, text = (evaluate(item, parameters, conditions) for item in argument)
            return text.split(separator) if isinstance(text, str) else value
        if key == "Fn::Select":
            index, items = (evaluate(item, parameters, conditions) for item in argument)
            return items[int(index)] if isinstance(items, list) else value
        if key == "Fn::Join":
            separator, items = argument
            items = evaluate(items, parameters, conditions)
            if not all(isinstance(item, str) for item in items):
                return {key: [separator, items]}  # joins something only CloudFormation knows
            return separator.join(items)
    items = {key: evaluate(item, parameters, conditions) for key, item in value.items()}
    return {key: item for key, item in items.items() if item is not None}


def rule_value(value, parameters):
    """A Rules expression's value: Ref, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Fn::EachMemberEquals."""
    if not isinstance(value, dict):
        return value
    (key, argument), = value.items()
    if key == "Ref":
        return parameters[argument]
    if key == "Fn::Equals":
        left, right = (rule_value(side, parameters) for side in argument)
        return left == right
    if key == "Fn::Not":
        return not rule_value(argument[0], parameters)
    if key == "Fn::And":
        return all(rule_value(item, parameters) for item in argument)
    if key == "Fn::Or":
        return any(rule_value(item, parameters) for item in argument)
    if key == "Fn::EachMemberEquals":
        members, expected = rule_value(argument[0], parameters), rule_value(argument[1], parameters)
        return all(member == expected for member in members)
    raise ValueError(f"no evaluator for {key} in Rules")


def refused_by_rules(template, overrides):
    """The descriptions of the Rules assertions these parameter values fail (CloudFormation
    refuses the stack before creating anything)."""
    parameters, _ = deployed_values(template, overrides)
    failed = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not rule_value(rule["RuleCondition"], parameters):
            continue
        failed += [a["AssertDescription"] for a in rule["Assertions"] if not rule_value(a["Assert"], parameters)]
    return failed


def deployed_values(template, overrides):
    """Parameter values (defaults, then `overrides`) and the conditions they make true."""
    parameters = {"AWS::NoValue": None}
    for name, declaration in template["Parameters"].items():
        value = overrides.get(name, declaration.get("Default"))
        if isinstance(value, (int, float)):
            value = str(value)  # CloudFormation's parameter values are strings
        if declaration["Type"] == "CommaDelimitedList" and isinstance(value, str):
            value = value.split(",")
        parameters[name] = value
    conditions = {}
    for name, condition in template.get("Conditions", {}).items():
        conditions[name] = evaluate(condition, parameters, conditions)
    return parameters, conditions




def alarms_of(resources):
    """logical id -> properties of every CloudWatch alarm."""
    return {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def metrics_read_by(alarm):
    """The metrics an alarm reads: (namespace, metric name, dimensions), one for a plain alarm,
    one per MetricStat query of a metric-math alarm."""
    if "MetricName" in alarm:
        return [(alarm.get("Namespace"), alarm["MetricName"], alarm.get("Dimensions", []))]
    return [(q["MetricStat"]["Metric"].get("Namespace"), q["MetricStat"]["Metric"].get("MetricName"),
             q["MetricStat"]["Metric"].get("Dimensions", [])) for q in alarm.get("Metrics", []) if "MetricStat" in q]


def function_dimensions(alarm):
    """The values of the FunctionName dimensions of every metric an alarm reads."""
    return [d.get("Value") for _, _, dimensions in metrics_read_by(alarm) for d in dimensions
            if d.get("Name") == "FunctionName"]


def watched_functions(alarm):
    """The functions (logical ids) an alarm's FunctionName dimensions `!Ref`."""
    return {value.get("Ref") for value in function_dimensions(alarm) if isinstance(value, dict)}


def cors_of(output, parameters, conditions):
    """The HTTP API's CORS configuration as deployed (None when it has none)."""
    api = next(r for r in output["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api")
    cors = api["Properties"]["Body"].get("x-amazon-apigateway-cors")
    return None if cors is None else evaluate(cors, parameters, conditions)




def routes_to(api_body, functions):
    """(method, path) -> the function logical id its integration invokes (None: no function of
    the template)."""
    routes = {}
    for path, methods in api_body["paths"].items():
        for method, operation in methods.items():
            uri = json.dumps(operation["x-amazon-apigateway-integration"]["uri"])
            target = next((name for name in functions if f"${{{name}.Arn}}" in uri), None)
            method = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
            routes[(method, path)] = target
    return routes


def check_vpc_options(source, template, check):
    """The VPC parameters: ids checked by pattern, a half-configured VPC refused by the Rules,
    and the optional Secrets Manager endpoint and database ingress rule."""
    declared = source["Parameters"]
    for name, good, bad in [("SubnetIds", "subnet-0123abcd", "sg-0123abcd"),
                            ("SecurityGroupIds", "sg-0123abcd", "subnet-0123abcd"),
                            ("VpcId", "vpc-0123abcd", "subnet-0123abcd"),
                            ("DatabaseSecurityGroupId", "sg-0123abcd", "vpc-0123abcd"),
                            ("S3EndpointRouteTableIds", "rtb-0123abcd", "sg-0123abcd")]:
        pattern = declared.get(name, {}).get("AllowedPattern", "")
        check(f"parameter {name} accepts {good} and nothing, and refuses {bad}",
              bool(pattern) and all(re.fullmatch(pattern, v) for v in [good, ""]) and not re.fullmatch(pattern, bad),
              pattern)
    subnets, groups = ["subnet-0123abcd", "subnet-4567ef01"], ["sg-0123abcd"]
    base = dict(PARAMETERS, SubnetIds=[""], SecurityGroupIds=[""])
    cases = [
        ("no VPC", {}, False),
        ("subnets and security groups", {"SubnetIds": subnets, "SecurityGroupIds": groups}, False),
        ("subnets without security groups", {"SubnetIds": subnets}, True),
        ("security groups without subnets", {"SecurityGroupIds": groups}, True),
        ("the endpoint without VpcId",
         {"SubnetIds": subnets, "SecurityGroupIds": groups, "CreateSecretsManagerEndpoint": "true"}, True),
        ("the endpoint without subnets", {"VpcId": "vpc-0123abcd", "CreateSecretsManagerEndpoint": "true"}, True),
        ("the endpoint with VpcId, subnets and security groups",
         {"SubnetIds": subnets, "SecurityGroupIds": groups, "VpcId": "vpc-0123abcd",
          "CreateSecretsManagerEndpoint": "true"}, False),
        ("a database security group without the functions' groups", {"DatabaseSecurityGroupId": "sg-0bad"}, True),
        ("the S3 endpoint without VpcId", {"SubnetIds": subnets, "SecurityGroupIds": groups,
                                           "S3EndpointRouteTableIds": ["rtb-0123abcd"]}, True),
        ("the SES endpoint without VpcId",
         {"SubnetIds": subnets, "SecurityGroupIds": groups, "CreateSesEndpoint": "true"}, True),
        ("the SES endpoint with VpcId, subnets and security groups",
         {"SubnetIds": subnets, "SecurityGroupIds": groups, "VpcId": "vpc-0123abcd", "CreateSesEndpoint": "true"},
         False),
    ]
    for name, overrides, refused in cases:
        failed = refused_by_rules(source, dict(base, **overrides))
        check(f"the Rules {'refuse' if refused else 'accept'} {name}", bool(failed) == refused, failed)

    vpc = dict(PARAMETERS, SubnetIds=subnets, SecurityGroupIds=groups + ["sg-89abcdef"], VpcId="vpc-0123abcd",
               CreateSecretsManagerEndpoint="true", DatabaseSecurityGroupId="sg-0dbdbdbd")
    output = transform(copy.deepcopy(template), vpc, OfflinePolicies())
    parameters, conditions = deployed_values(source, vpc)
    deployed = {name: evaluate(r.get("Properties", {}), parameters, conditions)
                for name, r in output["Resources"].items() if conditions.get(r.get("Condition"), True)}
    _, off = deployed_values(source, dict(base))
    absent = [name for name, r in output["Resources"].items()
              if r["Type"].startswith("AWS::EC2::") and off.get(r.get("Condition"), True)]
    check("without the options the template creates no EC2 resource", absent == [], absent)
    endpoints = [name for name, r in output["Resources"].items() if r["Type"] == "AWS::EC2::VPCEndpoint"
                 and r["Properties"].get("VpcEndpointType") == "Interface"
                 and "secretsmanager" in json.dumps(r["Properties"].get("ServiceName"))]
    with_s3 = dict(vpc, S3EndpointRouteTableIds=["rtb-0123abcd", "rtb-4567ef01"])
    s3_parameters, s3_conditions = deployed_values(source, with_s3)
    gateways = [evaluate(r["Properties"], s3_parameters, s3_conditions)
                for r in transform(copy.deepcopy(template), with_s3, OfflinePolicies())["Resources"].values()
                if r["Type"] == "AWS::EC2::VPCEndpoint" and s3_conditions.get(r.get("Condition"), True)
                and r["Properties"].get("VpcEndpointType") == "Gateway"]
    check("S3EndpointRouteTableIds makes an S3 gateway endpoint on those route tables (Migration's answer to CloudFormation)",
          len(gateways) == 1 and gateways[0].get("RouteTableIds") == ["rtb-0123abcd", "rtb-4567ef01"]
          and gateways[0].get("VpcId") == "vpc-0123abcd" and json.dumps(gateways[0].get("ServiceName")).endswith('.s3"}'),
          gateways)
    check("without S3EndpointRouteTableIds there is no S3 gateway endpoint",
          not any(conditions.get(r.get("Condition"), True) for r in output["Resources"].values()
                  if r["Type"] == "AWS::EC2::VPCEndpoint" and r["Properties"].get("VpcEndpointType") == "Gateway"))
    endpoint = deployed.get(endpoints[0], {}) if len(endpoints) == 1 else {}
    check("CreateSecretsManagerEndpoint makes an interface endpoint for secretsmanager with private DNS in the subnets",
          endpoint.get("VpcEndpointType") == "Interface" and endpoint.get("PrivateDnsEnabled") is True
          and endpoint.get("SubnetIds") == subnets and endpoint.get("VpcId") == "vpc-0123abcd"
          and "secretsmanager" in json.dumps(output["Resources"][endpoints[0]]["Properties"]["ServiceName"]),
          endpoint)

    def first(value):
        """`Fn::Select [0, list]` as deployed."""
        if isinstance(value, dict) and "Fn::Select" in value:
            index, items = value["Fn::Select"]
            return evaluate(items, parameters, conditions)[int(index)]
        return value

    group_refs = [g.get("Ref") for g in endpoint.get("SecurityGroupIds", []) if isinstance(g, dict)]
    endpoint_group = deployed.get(group_refs[0], {}) if len(group_refs) == 1 else {}
    https = [(r["IpProtocol"], r["FromPort"], r["ToPort"], first(r.get("SourceSecurityGroupId")))
             for r in endpoint_group.get("SecurityGroupIngress", [])]
    check("the endpoint's security group admits HTTPS from the functions' security group, and nothing else",
          https == [("tcp", 443, 443, "sg-0123abcd")], https)
    ingress = [(r["GroupId"], r["IpProtocol"], r["FromPort"], r["ToPort"], first(r.get("SourceSecurityGroupId")))
               for r in deployed.values() if "GroupId" in r and "IpProtocol" in r]
    check("DatabaseSecurityGroupId gets an ingress rule admitting Postgres from the functions' security group",
          ingress == [("sg-0dbdbdbd", "tcp", 5432, 5432, "sg-0123abcd")], ingress)

    # The SES API's endpoint: the mail senders run in the VPC and call SES over HTTPS.
    with_ses = dict(vpc, CreateSesEndpoint="true")
    ses_parameters, ses_conditions = deployed_values(source, with_ses)
    ses_output = transform(copy.deepcopy(template), with_ses, OfflinePolicies())["Resources"]
    ses = {name: evaluate(r["Properties"], ses_parameters, ses_conditions) for name, r in ses_output.items()
           if r["Type"] == "AWS::EC2::VPCEndpoint" and ses_conditions.get(r.get("Condition"), True)
           and json.dumps(r["Properties"].get("ServiceName")).endswith('.email"}')}
    check("without CreateSesEndpoint there is no SES endpoint",
          not any(conditions.get(r.get("Condition"), True) for r in output["Resources"].values()
                  if r["Type"] == "AWS::EC2::VPCEndpoint" and json.dumps(r["Properties"].get("ServiceName")).endswith('.email"}')))
    (ses_name, ses_endpoint), = ses.items() if len(ses) == 1 else [(None, {})]
    ses_groups = [g.get("Ref") for g in ses_endpoint.get("SecurityGroupIds", []) if isinstance(g, dict)]
    ses_group = evaluate(ses_output.get(ses_groups[0], {}).get("Properties", {}), ses_parameters, ses_conditions) \
        if len(ses_groups) == 1 else {}
    ses_https = [(r["IpProtocol"], r["FromPort"], r["ToPort"], r.get("SourceSecurityGroupId"))
                 for r in ses_group.get("SecurityGroupIngress", [])]
    check("CreateSesEndpoint makes an interface endpoint for the SES API (email, not email-smtp) with private DNS "
          "in the subnets, admitting HTTPS from the functions' security group alone",
          ses_endpoint.get("VpcEndpointType") == "Interface" and ses_endpoint.get("PrivateDnsEnabled") is True
          and ses_endpoint.get("SubnetIds") == subnets and ses_https == [("tcp", 443, 443, "sg-0123abcd")],
          (ses_name, ses_endpoint, ses_https))

    # EventBridge's endpoint: the security events' drain runs in the VPC and calls PutEvents.
    for name, overrides, refused in [
        ("the EventBridge endpoint without VpcId",
         {"SubnetIds": subnets, "SecurityGroupIds": groups, "CreateEventBridgeEndpoint": "true"}, True),
        ("the EventBridge endpoint with VpcId, subnets and security groups",
         {"SubnetIds": subnets, "SecurityGroupIds": groups, "VpcId": "vpc-0123abcd",
          "CreateEventBridgeEndpoint": "true"}, False),
    ]:
        failed = refused_by_rules(source, dict(base, **overrides))
        check(f"the Rules {'refuse' if refused else 'accept'} {name}", bool(failed) == refused, failed)

    def is_events(r):
        return json.dumps(r["Properties"].get("ServiceName")).endswith('.events"}')

    with_events = dict(vpc, CreateEventBridgeEndpoint="true")
    events_parameters, events_conditions = deployed_values(source, with_events)
    events_output = transform(copy.deepcopy(template), with_events, OfflinePolicies())["Resources"]
    made = [evaluate(r["Properties"], events_parameters, events_conditions) for r in events_output.values()
            if r["Type"] == "AWS::EC2::VPCEndpoint" and events_conditions.get(r.get("Condition"), True) and is_events(r)]
    check("without CreateEventBridgeEndpoint there is no EventBridge endpoint",
          not any(conditions.get(r.get("Condition"), True) for r in output["Resources"].values()
                  if r["Type"] == "AWS::EC2::VPCEndpoint" and is_events(r)))
    events_endpoint = made[0] if len(made) == 1 else {}
    events_groups = [g.get("Ref") for g in events_endpoint.get("SecurityGroupIds", []) if isinstance(g, dict)]
    events_group = evaluate(events_output.get(events_groups[0], {}).get("Properties", {}), events_parameters,
                            events_conditions) if len(events_groups) == 1 else {}
    events_https = [(r["IpProtocol"], r["FromPort"], r["ToPort"], r.get("SourceSecurityGroupId"))
                    for r in events_group.get("SecurityGroupIngress", [])]
    check("CreateEventBridgeEndpoint makes an interface endpoint for EventBridge (events) with private DNS in the "
          "subnets, admitting HTTPS from the functions' security group alone",
          events_endpoint.get("VpcEndpointType") == "Interface" and events_endpoint.get("PrivateDnsEnabled") is True
          and events_endpoint.get("SubnetIds") == subnets and events_https == [("tcp", 443, 443, "sg-0123abcd")],
          (events_endpoint, events_https))




def check_issuer(source, template, functions, check):
    """By default the functions derive the issuer (JWT_ISSUER empty, no second deploy); with a
    custom domain it is https://DomainName, served through the domain's resources; the outputs
    name the issuer and, for each /.well-known/ route of the API, that document's URL under the
    issuer, either way."""
    declared = source["Parameters"]
    check("parameter Issuer defaults to empty (derived)", declared.get("Issuer", {}).get("Default") == "",
          declared.get("Issuer"))
    well_known = sorted({path for f in functions.values() for method, path in f.routes
                         if method == "GET" and path.startswith("/.well-known/")})
    check("the API serves documents under /.well-known/ (the keys, discovery)", bool(well_known), well_known)
    domain = "auth.example.com"
    with_domain = dict(PARAMETERS, DomainName=domain,
                       CertificateArn="arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f",
                       HostedZoneId="Z0123456789ABC")
    api_url = {"Fn::Sub": "https://${AuthApi}.execute-api.${AWS::Region}.amazonaws.com"}
    for name, overrides, expected_issuer, expected_output in [
        ("by default", {}, "", api_url),
        ("with a custom domain", with_domain, f"https://{domain}", f"https://{domain}"),
        ("with Issuer set", dict(with_domain, Issuer="https://id.example.org"), "https://id.example.org",
         "https://id.example.org"),
    ]:
        output = transform(copy.deepcopy(template), dict(PARAMETERS, **overrides), OfflinePolicies())
        parameters, conditions = deployed_values(source, dict(PARAMETERS, **overrides))
        issuers = {evaluate(output["Resources"][f]["Properties"]["Environment"]["Variables"].get("JWT_ISSUER"),
                            parameters, conditions) for f in functions}
        check(f"{name} every function's JWT_ISSUER is {expected_issuer!r}", issuers == {expected_issuer}, issuers)
        outputs = {k: evaluate(v["Value"], parameters, conditions) for k, v in output.get("Outputs", {}).items()}
        check(f"{name} the IssuerUrl output is {expected_output}", outputs.get("IssuerUrl") == expected_output,
              outputs.get("IssuerUrl"))
        values = [json.dumps(value) for value in outputs.values()]
        issuer = json.dumps(expected_output).strip('"')
        for path in well_known:
            check(f"{name} an output is the issuer's {path}",
                  any(path in value and (issuer in value or "${AuthApi}.execute-api" in value) for value in values),
                  values)
        published = {url for value in values for url in re.findall(r'/\.well-known/[^"\\\s]+', value)}
        check(f"{name} every /.well-known/ URL the outputs name is a route of the API", published <= set(well_known),
              sorted(published - set(well_known)))
        made = {r["Type"] for r in output["Resources"].values() if conditions.get(r.get("Condition"), True)}
        domain_types = {"AWS::ApiGatewayV2::DomainName", "AWS::ApiGatewayV2::ApiMapping", "AWS::Route53::RecordSet"}
        expected = domain_types if overrides else set()
        check(f"{name} the domain resources are {sorted(expected) or 'absent'}", made & domain_types == expected,
              made & domain_types)
        if overrides:
            mapping = next(r for r in output["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::ApiMapping")
            stage = mapping["Properties"]["Stage"].get("Ref")
            check("the domain maps to the API's $default stage",
                  output["Resources"].get(stage, {}).get("Properties", {}).get("StageName") == "$default", stage)
    check("the Rules refuse a domain without a certificate",
          bool(refused_by_rules(source, dict(PARAMETERS, DomainName=domain))))


def check_observability(source, output, functions, check):
    """Log groups with a retention for every function and for the API's access logs; alarms on
    functions of the template, breaching on missing data only for what a schedule writes; each
    *AlarmThreshold parameter the threshold of one alarm; tracing off by default; and every
    reserved concurrency a parameter, unreserved by default."""
    resources = output["Resources"]
    declared = source["Parameters"]
    check("parameter LogRetentionDays defaults to 30", str(declared.get("LogRetentionDays", {}).get("Default")) == "30")
    check("parameter TracingMode defaults to PassThrough", declared.get("TracingMode", {}).get("Default") == "PassThrough")
    retention = {"Ref": "LogRetentionDays"}
    for name in functions:
        props = resources[name]["Properties"]
        logging = props.get("LoggingConfig", {})
        group = resources.get(logging.get("LogGroup", {}).get("Ref", ""), {})
        check(f"{name} logs JSON into a log group of the stack with LogRetentionDays",
              logging.get("LogFormat") == "JSON" and group.get("Type") == "AWS::Logs::LogGroup"
              and group["Properties"].get("RetentionInDays") == retention, logging)
        check(f"{name} traces as TracingMode says", props.get("TracingConfig") == {"Mode": {"Ref": "TracingMode"}},
              props.get("TracingConfig"))
    stages = {n: r for n, r in resources.items() if r["Type"] == "AWS::ApiGatewayV2::Stage"}
    check("each HTTP API has a stage", len(stages) == 2, sorted(stages))
    for stage_name, stage in sorted(stages.items()):
        access = stage["Properties"].get("AccessLogSettings", {})
        destination = access.get("DestinationArn", {}).get("Fn::GetAtt", [""])[0]
        access_group = resources.get(destination, {})
        try:
            fields = json.loads(access.get("Format", ""))
        except ValueError:
            fields = {}
        check(f"{stage_name} writes JSON access logs (request id, route, status, latency) to a log group with LogRetentionDays",
              access_group.get("Type") == "AWS::Logs::LogGroup"
              and access_group["Properties"].get("RetentionInDays") == retention
              and {"requestId", "routeKey", "status", "responseLatency"} <= set(fields), access)

    alarms = alarms_of(resources)
    scheduled = {name for name, f in functions.items() if f.scheduled}
    check("some function runs on a schedule", bool(scheduled))
    for alarm_name, alarm in sorted(alarms.items()):
        dimensions = function_dimensions(alarm)
        if dimensions:
            check(f"the {alarm_name} alarm's FunctionName dimensions name functions of the template",
                  all(isinstance(v, dict) and list(v) == ["Ref"] and v["Ref"] in functions for v in dimensions),
                  dimensions)
        metrics = metrics_read_by(alarm)
        custom = bool(metrics) and all(namespace == METRICS_NAMESPACE for namespace, _, _ in metrics)
        watched = watched_functions(alarm)
        of_schedule = custom and bool(watched) and watched <= scheduled
        treatment = "breaching" if of_schedule else "notBreaching"
        why = "a metric only a schedule writes, so no data means it did not run" if of_schedule else "nothing written, nothing wrong"
        check(f"the {alarm_name} alarm treats missing data as {treatment} ({why})",
              alarm.get("TreatMissingData") == treatment, alarm.get("TreatMissingData"))
        for topic, expected in [("", None), ("arn:aws:sns:eu-west-1:123456789012:alarms",
                                             ["arn:aws:sns:eu-west-1:123456789012:alarms"])]:
            topic_values, topic_conditions = deployed_values(source, dict(PARAMETERS, AlarmTopicArn=topic))
            actions = evaluate({"x": alarm.get("AlarmActions")}, topic_values, topic_conditions).get("x")
            check(f"the {alarm_name} alarm notifies {'AlarmTopicArn' if topic else 'no one without AlarmTopicArn'}",
                  actions == expected, actions)

    def watching(name, namespace, metric=None):
        return [a for a in alarms.values() if {"Ref": name} in function_dimensions(a) and any(
            ns == namespace and (metric is None or m == metric) for ns, m, _ in metrics_read_by(a))]

    for name in sorted(scheduled):
        check(f"{name} (it runs on a schedule) has an alarm on a metric it writes to MetricsNamespace, breaching on missing data",
              any(a.get("TreatMissingData") == "breaching" for a in watching(name, METRICS_NAMESPACE)))
        check(f"{name} (it runs on a schedule) has an alarm on its Errors", bool(watching(name, "AWS/Lambda", "Errors")))
    server_errors = [a for a in alarms.values() if any(m == "5xx" for _, m, _ in metrics_read_by(a))]
    check("the 5xx alarm watches the HTTP API by ApiId",
          len(server_errors) == 1 and server_errors[0].get("Namespace") == "AWS/ApiGateway"
          and server_errors[0].get("Dimensions") == [{"Name": "ApiId", "Value": {"Ref": "AuthApi"}}], server_errors)
    for parameter in sorted(name for name in declared if name.endswith("AlarmThreshold")):
        using = [a for a in alarms.values() if a.get("Threshold") == {"Ref": parameter}]
        alarm = using[0] if len(using) == 1 else {}
        check(f"{parameter} (a Number) is the threshold of one alarm, on a metric a function of the template "
              "writes to MetricsNamespace, which fires at or above it",
              len(using) == 1 and declared[parameter].get("Type") == "Number"
              and alarm.get("Namespace") == METRICS_NAMESPACE and len(alarm.get("Dimensions", [])) == 1
              and len(watched_functions(alarm)) == 1 and watched_functions(alarm) <= set(functions)
              and alarm.get("ComparisonOperator") == "GreaterThanOrEqualToThreshold", using)
    check("every function is told METRICS_NAMESPACE",
          all(resources[n]["Properties"]["Environment"]["Variables"].get("METRICS_NAMESPACE") == METRICS_NAMESPACE
              for n in functions))

    reserving = {}
    for name, function in functions.items():
        reserved = function.properties.get("ReservedConcurrentExecutions")
        if reserved is None:
            continue
        branches = reserved.get("Fn::If") if isinstance(reserved, dict) and len(reserved) == 1 else None
        shaped = (isinstance(branches, list) and len(branches) == 3 and branches[0] in source.get("Conditions", {})
                  and isinstance(branches[1], dict) and list(branches[1]) == ["Ref"] and branches[1]["Ref"] in declared
                  and branches[2] == {"Ref": "AWS::NoValue"})
        check(f"{name}'s ReservedConcurrentExecutions is !If [a condition, !Ref a parameter, !Ref AWS::NoValue]",
              shaped, reserved)
        if shaped:
            reserving[name] = (branches[0], branches[1]["Ref"])
    check("some function's concurrency may be reserved through a parameter", bool(reserving))
    for name, (condition, parameter) in sorted(reserving.items()):
        reserved = resources[name]["Properties"].get("ReservedConcurrentExecutions")
        unreserved, unreserved_conditions = deployed_values(source, PARAMETERS)
        bounded, bounded_conditions = deployed_values(source, dict(PARAMETERS, **{parameter: "5"}))
        check(f"{name} is unreserved by default and reserves {parameter} when set ({condition})",
              evaluate({"x": reserved}, unreserved, unreserved_conditions) == {}
              and evaluate(reserved, bounded, bounded_conditions) == "5", reserved)
        check(f"the Rules refuse {parameter} 0 (it would disable the function)",
              bool(refused_by_rules(source, dict(PARAMETERS, **{parameter: "0"})))
              and not refused_by_rules(source, dict(PARAMETERS, **{parameter: "5"})))


def check_migration(template, resources, functions, migration, check):
    """The deploy migrates: a custom resource invoking the migration function's published alias
    (the migration function is the one function a custom resource's ServiceToken references),
    bound to its published version (so a code change re-runs it), that every other database
    function waits for."""
    custom = custom_resources(resources)
    check("one custom resource, Migration", list(custom) == ["Migration"], list(custom))
    check("a custom resource's ServiceToken references one function of the template (the migration function)",
          migration is not None, {n: r.get("Properties", {}).get("ServiceToken")
                                  for n, r in custom_resources(template["Resources"]).items()})
    if migration is None:
        return
    function = functions[migration]
    check(f"the migration function ({migration}) serves no route", not function.routes, sorted(function.routes))
    check(f"the migration function ({migration}) is told the migration secret as DB_SECRET_ARN and the application "
          "secret as DB_APPLICATION_SECRET_ARN, and no other secret",
          function.secrets == set(MIGRATION_SECRET_VARIABLES)
          and all(resolve(function.variables.get(v)) == s for s, v in MIGRATION_SECRET_VARIABLES.items()),
          {v: function.variables.get(v) for v in ALL_SECRET_VARIABLES})
    migration_properties = custom.get("Migration", {}).get("Properties", {})
    alias = next((n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Alias"
                  and r["Properties"].get("FunctionName") == {"Ref": migration}), None)
    check(f"the migration function ({migration}) has a published alias", alias is not None)
    check("Migration's ServiceToken is the migration function's alias (an ARN that never changes)",
          alias is not None and migration_properties.get("ServiceToken") == {"Ref": alias},
          migration_properties.get("ServiceToken"))
    global_function = template.get("Globals", {}).get("Function", {})
    timeout = int(function.properties.get("Timeout", global_function.get("Timeout", 3)))
    check("without an answer the deploy fails within 10 minutes, after Lambda's two retries",
          3 * timeout <= int(migration_properties.get("ServiceTimeout", 3600)) <= 600,
          (timeout, migration_properties.get("ServiceTimeout")))
    code_version = migration_properties.get("CodeVersion")
    version = code_version.get("Ref", "") if isinstance(code_version, dict) else ""
    check("Migration's CodeVersion is the migration function's published version",
          resources.get(version, {}).get("Type") == "AWS::Lambda::Version"
          and resources[version]["Properties"].get("FunctionName") == {"Ref": migration},
          migration_properties.get("CodeVersion"))
    # What `sam deploy` does when the migration zip changes: a new S3 key, so a new version
    # resource, so a new CodeVersion: CloudFormation sends Migration an Update.
    changed = copy.deepcopy(template)
    changed["Resources"][migration]["Properties"]["CodeUri"] += ".changed"
    changed_resources = transform(changed, PARAMETERS, OfflinePolicies())["Resources"]
    changed_version = changed_resources.get("Migration", {}).get("Properties", {}).get("CodeVersion")
    check("new migration code changes Migration's CodeVersion (the migration runs again)",
          changed_version != migration_properties.get("CodeVersion"), changed_version)
    # The network the migration needs (each a resource only under its condition): referenced
    # from Migration's properties, so made before it and deleted after it.
    referenced = json.dumps(custom.get("Migration", {}))
    for network in ["SecretsManagerEndpoint", "S3GatewayEndpoint", "DatabaseIngressFromFunctions"]:
        check(f"Migration depends on {network} (made before the migration runs, deleted after its answer)",
              network in template["Resources"] and json.dumps({"Ref": network}) in referenced,
              custom.get("Migration", {}).get("Properties"))
    for name in [n for n, f in functions.items() if DB_SECRET in f.secrets and n != migration]:
        depends = resources.get(name, {}).get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else depends
        check(f"{name} changes only after the migration (DependsOn Migration)", "Migration" in depends, depends)


def check_secrets_kms_key(source, resources, functions, check):
    """SecretsKmsKeyArn: optional; when set, every function that reads a secret may decrypt with
    that key, through Secrets Manager only."""
    declaration = source["Parameters"].get("SecretsKmsKeyArn", {})
    pattern = declaration.get("AllowedPattern", "")
    check("parameter SecretsKmsKeyArn is optional (empty: the AWS managed key)", declaration.get("Default") == "", declaration)
    accepted = [value for value in ["alias/aws/secretsmanager", "1234abcd-12ab-34cd-56ef-1234567890ab",
                                    "arn:aws:kms:eu-west-1:123456789012:alias/secrets",
                                    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x"]
                if re.fullmatch(pattern, value)]
    check("parameter SecretsKmsKeyArn accepts only a full key ARN or nothing",
          pattern and not accepted and re.fullmatch(pattern, KMS_KEY) and re.fullmatch(pattern, ""), accepted)
    policies = {n: r for n, r in resources.items() if r["Type"] == "AWS::IAM::Policy"
                and "kms:Decrypt" in json.dumps(r["Properties"]["PolicyDocument"])}
    check("one kms:Decrypt policy", len(policies) == 1, list(policies))
    if len(policies) != 1:
        return
    (name, policy), = policies.items()
    for key_arn, expected in [("", False), (KMS_KEY, True)]:
        _, conditions = deployed_values(source, dict(PARAMETERS, SecretsKmsKeyArn=key_arn))
        exists = conditions.get(policy.get("Condition"), policy.get("Condition") is None)
        check(f"the kms:Decrypt policy {'exists' if expected else 'does not exist'} with SecretsKmsKeyArn={key_arn!r}",
              exists == expected, policy.get("Condition"))
    # A function that exists only under a condition has its role listed under the same one.
    for out in ["true", "false"]:
        values, conditions = deployed_values(source, dict(PARAMETERS, SecretsKmsKeyArn=KMS_KEY, SecurityEventsOut=out))
        readers = {role_of(resources, n) for n, f in functions.items()
                   if f.secrets and conditions.get(f.resource.get("Condition"), True)}
        roles = {role.get("Ref") for role in evaluate(policy["Properties"]["Roles"], values, conditions)}
        check(f"every function that reads a secret may decrypt with the key, and no other (SecurityEventsOut={out})",
              roles == readers, sorted(map(str, roles ^ readers)))
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    expected = [{
        "Effect": "Allow", "Action": "kms:Decrypt", "Resource": {"Ref": "SecretsKmsKeyArn"},
        "Condition": {"StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}},
    }]
    check("kms:Decrypt on that key only, through Secrets Manager in the stack's region", statements == expected, statements)


def put_events_statements(resource):
    """The statements of a role resource that name an EventBridge action (or every action)."""
    found = []
    for policy in resource["Properties"].get("Policies", []):
        for statement in as_list(policy["PolicyDocument"].get("Statement", [])):
            actions = as_list(statement.get("Action", []))
            if any(a == "*" or str(a).startswith("events:") for a in actions):
                found.append(statement)
    return found


def check_security_events_out(source, resources, functions, migration, check):
    """SecurityEventsOut: by default one scheduled function may put events on EventBusName and on
    nothing else, every minute, with its alarms; off, it and everything of it is gone, and the
    migration is told so (EVENTS_OUT) to stop queueing."""
    declared = source["Parameters"]
    check("parameter SecurityEventsOut is true or false, true by default",
          declared.get("SecurityEventsOut", {}).get("Default") == "true"
          and sorted(declared.get("SecurityEventsOut", {}).get("AllowedValues", [])) == ["false", "true"])
    check("parameter EventBusName defaults to the default bus", declared.get("EventBusName", {}).get("Default") == "default")
    pattern = declared.get("EventBusName", {}).get("AllowedPattern", "")
    check("parameter EventBusName takes a name, never an ARN or a wildcard",
          bool(pattern) and re.fullmatch(pattern, "auth-events") and not re.fullmatch(pattern, "*")
          and not re.fullmatch(pattern, "arn:aws:events:eu-west-1:123456789012:event-bus/x"), pattern)
    senders = {n: put_events_statements(resources[role_of(resources, n)]) for n in functions if role_of(resources, n)}
    senders = {n: statements for n, statements in senders.items() if statements}
    check("one function may put events on EventBridge", len(senders) == 1, sorted(senders))
    if len(senders) != 1:
        return
    (name, statements), = senders.items()
    function = functions[name]
    bus = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"}
    check(f"{name} may call events:PutEvents alone, on EventBusName alone",
          statements == [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": bus}], statements)
    check(f"{name} is told EVENT_BUS_NAME from EventBusName",
          function.variables.get("EVENT_BUS_NAME") == {"Ref": "EventBusName"}, function.variables.get("EVENT_BUS_NAME"))
    schedules = [e["Properties"].get("Schedule") for e in (function.properties.get("Events") or {}).values()
                 if e.get("Type") == "Schedule"]
    check(f"{name} runs every minute, and on nothing else", schedules == ["rate(1 minute)"]
          and not function.routes, schedules)
    check(f"{name} is in the VPC (the database)", function.vpc)
    condition = function.resource.get("Condition")
    for out in ["true", "false"]:
        _, conditions = deployed_values(source, dict(PARAMETERS, SecurityEventsOut=out))
        present = sorted(n for n, r in resources.items() if conditions.get(r.get("Condition"), True)
                         and name in json.dumps(r) and n != "SecretsKmsDecryptPolicy")
        expected = out == "true"
        check(f"with SecurityEventsOut={out} {name}, its role, schedule, log group and alarms "
              f"{'exist' if expected else 'do not exist'}",
              condition is not None and conditions.get(condition) == expected
              and all(conditions.get(resources[n].get("Condition"), True) == expected for n in present)
              and (len(present) >= 6 if expected else True), present)
    if migration is not None:
        check("the migration function is told EVENTS_OUT from SecurityEventsOut (off: it stops the queueing)",
              functions[migration].variables.get("EVENTS_OUT") == {"Ref": "SecurityEventsOut"},
              functions[migration].variables.get("EVENTS_OUT"))


def ses_statements(resource):
    """The statements of a role or policy resource that name an SES action (or every action)."""
    documents = [policy["PolicyDocument"] for policy in resource["Properties"].get("Policies", [])]
    if "PolicyDocument" in resource["Properties"]:
        documents.append(resource["Properties"]["PolicyDocument"])
    found = []
    for document in documents:
        for statement in document.get("Statement", []):
            actions = statement.get("Action", [])
            actions = actions if isinstance(actions, list) else [actions]
            if any(isinstance(a, str) and (a.lower().startswith("ses:") or a == "*") for a in actions):
                found.append(statement)
    return found




def check_mail(source, resources, functions, check):
    """Mail: MailFrom, MailIdentity and AppUrl are required and checked by pattern (no IAM
    wildcard can reach the policy, no header can be injected, the links are https); the sending
    functions (those whose environment has MAIL_FROM), and no other, are told the mail settings
    and may call ses:SendEmail, on the MailIdentity identity only; one function, one that issues
    tokens, is told REQUIRE_VERIFIED_EMAIL; one alarm sums MailRejected over the senders."""
    declared = source["Parameters"]
    patterns = [
        ("MailFrom", ["no-reply@example.com", "Example <no-reply@example.com>", "\"Example, Inc.\" <a+b@mail.example.com>"],
         ["", "Example", "no-reply@example.com\r\nBcc: victim@example.org", "Example <no-reply@example.com",
          "<a@example.com> <b@example.com>", "no reply@example.com"]),
        ("MailIdentity", ["example.com", "mail.example.com", "no-reply@example.com", "a.b+c@Example.co.uk"],
         ["", "*", "*.example.com", "example.*", "exa?ple.com", "${aws:username}@example.com", "example.com/*",
          "arn:aws:ses:eu-west-1:123456789012:identity/example.com", "localhost", "-example.com"]),
        ("AppUrl", ["https://app.example.com", "https://app.example.com/", "https://example.com:8443/app/"],
         ["", "http://app.example.com", "app.example.com", "https://app.example.com/?next=/",
          "https://app.example.com/#x", "https://app example.com", "javascript:alert(1)", "https://"]),
    ]
    for parameter, good, bad in patterns:
        declaration = declared.get(parameter, {})
        pattern = declaration.get("AllowedPattern", "")
        check(f"parameter {parameter} is required (no Default)", parameter in declared and "Default" not in declaration,
              declaration)
        refused = [value for value in good if not re.fullmatch(pattern, value)]
        accepted = [value for value in bad if re.fullmatch(pattern, value)]
        check(f"parameter {parameter} accepts {good[0]!r} and refuses {', '.join(map(repr, bad[:4]))}, ...",
              bool(pattern) and not refused and not accepted, {"refused": refused, "accepted": accepted})
        check(f"parameter {parameter} accepts the value the checks deploy with",
              bool(pattern) and re.fullmatch(pattern, PARAMETERS[parameter]) is not None, PARAMETERS[parameter])
    limit = declared.get("MailHourlyLimit", {})
    check("parameter MailHourlyLimit is a Number, default 1000, at least 1",
          limit.get("Type") == "Number" and str(limit.get("Default")) == "1000" and str(limit.get("MinValue")) == "1", limit)
    per_source = declared.get("LoginFailuresPerSource", {})
    check("parameter LoginFailuresPerSource is a Number, default 200, at least 1",
          per_source.get("Type") == "Number" and str(per_source.get("Default")) == "200"
          and str(per_source.get("MinValue")) == "1", per_source)
    told = {name: resources[name]["Properties"].get("Environment", {}).get("Variables", {}).get("LOGIN_SOURCE_FAILURE_LIMIT")
            for name in functions}
    told = {name: value for name, value in told.items() if value is not None}
    check("the function serving POST /auth/login is told LOGIN_SOURCE_FAILURE_LIMIT from LoginFailuresPerSource, "
          "and no other",
          told == {name: {"Ref": "LoginFailuresPerSource"} for name, f in functions.items()
                   if ("POST", "/auth/login") in f.routes}, told)
    verified = declared.get("RequireVerifiedEmail", {})
    check("parameter RequireVerifiedEmail defaults to false and allows only true and false",
          verified.get("Default") == "false" and sorted(verified.get("AllowedValues", [])) == ["false", "true"], verified)


    mailers = sorted(name for name, f in functions.items() if f.mailer)
    check("some function sends mail (its environment has MAIL_FROM)", bool(mailers), mailers)
    for name, function in functions.items():
        variables = resources[name]["Properties"].get("Environment", {}).get("Variables", {})
        told = {variable: variables.get(variable) for variable in MAIL_VARIABLES if variable in variables}
        if function.mailer:
            check(f"{name} is told the mail settings ({', '.join(MAIL_VARIABLES)})",
                  told == {variable: {"Ref": parameter} for variable, parameter in MAIL_VARIABLES.items()}, told)
        else:
            # APP_URL alone names the passkeys' relying party (the house test holds it to the code).
            check(f"{name} is told no mail setting (APP_URL at most, from AppUrl)",
                  told in ({}, {"APP_URL": {"Ref": "AppUrl"}}), told)
    requiring = sorted(name for name, f in functions.items() if "REQUIRE_VERIFIED_EMAIL" in f.variables)
    serving = sorted(name for name, f in functions.items()
                     if f.routes & {("POST", "/auth/login"), ("POST", "/auth/signup")})
    check("the functions told REQUIRE_VERIFIED_EMAIL are those serving POST /auth/login and POST /auth/signup",
          requiring == serving and len(serving) == 2, {"told": requiring, "serving": serving})
    for name in requiring:
        require = resources[name]["Properties"].get("Environment", {}).get("Variables", {}).get("REQUIRE_VERIFIED_EMAIL")
        check(f"{name} is told REQUIRE_VERIFIED_EMAIL from RequireVerifiedEmail, and issues tokens (it names the signing secret)",
              require == {"Ref": "RequireVerifiedEmail"} and SIGNING_SECRET in functions[name].secrets, require)

    values, conditions = deployed_values(source, PARAMETERS)
    values.update({name: value for name, value in PARAMETERS.items() if name.startswith("AWS::")})
    address_values = dict(values, MailIdentity="no-reply@example.com")
    holders = {}
    for name, resource in resources.items():
        if resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            statements = ses_statements(resource)
            managed = [arn for arn in resource["Properties"].get("ManagedPolicyArns", []) if "ses" in json.dumps(arn).lower()]
            if statements or managed:
                holders[name] = (statements, managed)
    roles = {name: role_of(resources, name) for name in functions}
    senders = {roles[name] for name in mailers}
    check(f"only the roles of the functions told MAIL_FROM ({len(mailers)}) may call SES",
          set(holders) == senders, {"may call SES": sorted(holders), "told MAIL_FROM": sorted(map(str, senders))})
    for name in mailers:
        statements, managed = holders.get(roles[name], ([], []))
        statement = statements[0] if len(statements) == 1 else {}
        action = statement.get("Action")
        check(f"{name} may call SES through exactly one statement and no managed policy",
              len(statements) == 1 and not managed, (statements, managed))
        check(f"{name}'s SES statement allows ses:SendEmail alone, on one condition",
              statement.get("Effect") == "Allow" and action in ("ses:SendEmail", ["ses:SendEmail"])
              and set(statement) == {"Effect", "Action", "Resource", "Condition"}, statement)
        condition = statement.get("Condition", {})
        from_address = condition.get("StringEquals", {}).get("ses:FromAddress")
        sends_from = {}
        for mail_from, address in [("no-reply@example.com", "no-reply@example.com"),
                                   ("Example <no-reply@example.com>", "no-reply@example.com"),
                                   ("\"Example, Inc.\" <a+b@mail.example.com>", "a+b@mail.example.com")]:
            given, given_conditions = deployed_values(source, dict(PARAMETERS, MailFrom=mail_from))
            sends_from[mail_from] = (evaluate(from_address, given, given_conditions), address)
        check(f"{name} may send from MailFrom's address only (ses:FromAddress, with or without a display name)",
              list(condition) == ["StringEquals"] and list(condition["StringEquals"]) == ["ses:FromAddress"]
              and all(got == address for got, address in sends_from.values()), sends_from)
        resource = statement.get("Resource")
        check(f"{name} may send from the MailIdentity identity only ({MAIL_IDENTITY_ARN})",
              evaluate(resource, values, conditions) == MAIL_IDENTITY_ARN
              and evaluate(resource, address_values, conditions).endswith(":identity/no-reply@example.com")
              and "*" not in json.dumps(resource), resource)

    alarms = [r["Properties"] for r in resources.values()
              if r["Type"] == "AWS::CloudWatch::Alarm" and "MailRejected" in json.dumps(r["Properties"])]
    check("one alarm watches MailRejected", len(alarms) == 1, len(alarms))
    alarm = alarms[0] if len(alarms) == 1 else {}
    queries = alarm.get("Metrics", [])
    stats = {q["Id"]: q["MetricStat"] for q in queries if "MetricStat" in q}
    watched = sorted(d["Value"].get("Ref") for s in stats.values() for d in s["Metric"].get("Dimensions", [])
                     if d.get("Name") == "FunctionName" and isinstance(d.get("Value"), dict))
    check("the MailRejected alarm reads the metric of each sending function, and of no other",
          watched == mailers and len(stats) == len(mailers)
          and all(s["Metric"].get("Namespace") == METRICS_NAMESPACE and s["Metric"].get("MetricName") == "MailRejected"
                  and s.get("Stat") == "Sum" and s.get("Period") == 300 for s in stats.values())
          and not any(q.get("ReturnData", True) for q in queries if "MetricStat" in q), {"watched": watched, "senders": mailers})
    returned = [q for q in queries if q.get("ReturnData", True)]
    expression = returned[0].get("Expression", "") if len(returned) == 1 else ""
    summed = re.fullmatch(r"SUM\(\[([^\]]*)\]\)", expression.replace(" ", ""))
    check(f"the MailRejected alarm sums the {len(mailers)} (SUM over the queries, the one it returns)",
          summed is not None and sorted(summed[1].split(",")) == sorted(stats), expression)
    check("the MailRejected alarm fires on one rejected mail in 5 minutes, and no data is not breaching",
          alarm.get("Threshold") == 1 and alarm.get("ComparisonOperator") == "GreaterThanOrEqualToThreshold"
          and alarm.get("EvaluationPeriods") == 1 and alarm.get("TreatMissingData") == "notBreaching", alarm)


def check_functions(source, resources, functions, migration, check):
    """Each function as translated: runtime, architecture, handler, the zip it ships, VPC, the
    secrets it may read (exactly those its environment names) and the variables that name them,
    the Globals environment, and where it connects to the database."""
    for name, function in functions.items():
        props = resources.get(name, {}).get("Properties", {})
        check(f"{name} is a Lambda function", resources.get(name, {}).get("Type") == "AWS::Lambda::Function")
        check(f"{name} runs provided.al2023", props.get("Runtime") == "provided.al2023", props.get("Runtime"))
        check(f"{name} is arm64", props.get("Architectures") == ["arm64"], props.get("Architectures"))
        check(f"{name} handler is bootstrap", props.get("Handler") == "bootstrap", props.get("Handler"))
        zip_path = f"target/lambda/{function.binary}/bootstrap.zip"
        check(f"{name} ships {zip_path if function.binary else 'target/lambda/<binary>/bootstrap.zip'}, what `make package` writes",
              function.binary is not None and props.get("Code") == {"S3Bucket": "artifacts", "S3Key": zip_path},
              (function.code_uri, props.get("Code")))
        check(f"{name} has no `sam build` metadata", "Metadata" not in function.resource, function.resource.get("Metadata"))
        check(f"{name} {'is' if function.vpc else 'is not'} in the VPC, as its VpcConfig says", ("VpcConfig" in props) == function.vpc)
        role = role_of(resources, name)
        readable = secrets_readable_by(resources, role)
        check(f"{name} may read exactly the secrets its environment names ({', '.join(labels(function.secrets)) or 'none'})",
              role is not None and readable == function.secrets, labels(readable))
        if VERIFICATION_SECRET in function.secrets and SIGNING_SECRET not in function.secrets:
            check(f"{name} (a verifier) may not read the signing secret", SIGNING_SECRET not in readable, labels(readable))
        variables = props.get("Environment", {}).get("Variables", {})
        secret_variables = MIGRATION_SECRET_VARIABLES if name == migration else SECRET_VARIABLES
        for variable in sorted(ALL_SECRET_VARIABLES):
            secret = next((s for s, v in secret_variables.items() if v == variable), None)
            told = variable in variables
            check(f"{name} is told {variable} iff it may read that secret", told == (secret in readable),
                  {v: variables[v] for v in sorted(ALL_SECRET_VARIABLES) if v in variables})
            if told:
                value = resolve(variables[variable])
                check(f"{name}'s {variable} names that secret ({secret_label(secret)})", value == secret, value)
        check(f"{name} is told no obsolete JWT_KEYS_SECRET_ARN", "JWT_KEYS_SECRET_ARN" not in variables)
        for variable, value in GLOBAL_VARIABLES.items():
            check(f"{name} gets {variable} from {value['Ref']}", variables.get(variable) == value, variables.get(variable))
        if function.vpc:
            # The API connects through DbProxyEndpoint when there is one, as a transaction
            # pooler's client; the migration function (a session-level advisory lock) always
            # goes to DbHost.
            for proxy, overrides in [(False, {"DbHost": "db.internal"}),
                                     (True, {"DbHost": "db.internal", "DbProxyEndpoint": "auth.proxy-x.rds.amazonaws.com"})]:
                values, conditions = deployed_values(source, {**PARAMETERS, **overrides})
                through_proxy = proxy and name != migration
                host = evaluate(variables.get("DB_HOST"), values, conditions)
                pooler = evaluate(variables.get("DB_TRANSACTION_POOLER"), values, conditions)
                expected = ("auth.proxy-x.rds.amazonaws.com", "true") if through_proxy else ("db.internal", "false")
                check(f"{name} connects to {expected[0]} with DB_TRANSACTION_POOLER={expected[1]}"
                      f" ({'with' if proxy else 'without'} DbProxyEndpoint)",
                      (host, pooler) == expected, (host, pooler))


def described_routes(description):
    """The routes a function's Description names: `GET /a and /b` is GET /a and GET /b."""
    routes, method = set(), None
    for verb, path in re.findall(r"\b(GET|POST|PUT|PATCH|DELETE|ANY)\b|(?<![\w.])(/[^\s,;()]+)", description or ""):
        method = verb or method
        if path and method:
            routes.add((method, path))
    return routes


def check_structure(functions, migration, token_keys, check):
    """The promises no list keeps any more, as rules over the functions template.yaml declares."""
    check(f"template.yaml declares functions ({len(functions)})", bool(functions))
    unreachable = sorted(n for n, f in functions.items() if not f.routes and not f.scheduled and n != migration)
    check("every function is invoked by something: a route, a schedule or the custom resource", not unreachable,
          unreachable)
    described = {n: (sorted(described_routes(f.properties.get("Description"))), sorted(f.routes))
                 for n, f in functions.items() if described_routes(f.properties.get("Description"))}
    check("the routes a function's Description names are exactly its HttpApi events",
          all(named == served for named, served in described.values()),
          {n: {"described": named, "served": served} for n, (named, served) in described.items() if named != served})
    binaries = [f.binary for f in functions.values() if f.binary]
    check("no two functions ship the same binary", len(binaries) == len(set(binaries)),
          sorted({b for b in binaries if binaries.count(b) > 1}))
    unread = sorted(n for n, keys in token_keys.items() if keys is None)
    check("each function's NEEDS is read from its code (functions/src/bin/<binary>.rs, shared/src/handlers/<module>.rs)",
          not unread, unread)
    both = sorted(n for n, f in functions.items() if {SIGNING_SECRET, VERIFICATION_SECRET} <= f.secrets)
    signing_verifiers = sorted(n for n, keys in token_keys.items() if keys == "SignAndVerify")
    check("the functions whose environment names both the signing and the verification secret are exactly those "
          "whose code checks an access token and signs one (Keys::SignAndVerify)",
          both == signing_verifiers, {"both secrets": both, "Keys::SignAndVerify": signing_verifiers})
    outside = sorted(n for n, f in functions.items() if not f.vpc and f.secrets & DATABASE_SECRETS)
    check("a function without VpcConfig reads no database secret", not outside, outside)
    idle = sorted(n for n, f in functions.items() if f.vpc and not f.secrets & DATABASE_SECRETS)
    check("a function with VpcConfig reads a database secret (the VPC is there for the database)", not idle, idle)
    others = sorted(n for n, f in functions.items() if MIGRATION_SECRET in f.secrets and n != migration)
    check("no function but the migration function names the migration secret", not others, others)
    unknown = {n: sorted(v for v in f.variables if v.endswith("_SECRET_ARN") and v not in ALL_SECRET_VARIABLES)
               for n, f in functions.items()}
    unknown = {n: v for n, v in unknown.items() if v}
    check(f"every *_SECRET_ARN variable a function is told is one of {', '.join(sorted(ALL_SECRET_VARIABLES))}",
          not unknown, unknown)


def main(path):
    with open(path) as handle:
        source = yaml_parse(handle.read())
    functions = source_functions(source)
    migration = migration_function(source, functions)
    template = copy.deepcopy(source)
    global_function = template.get("Globals", {}).get("Function", {})
    # What `sam deploy` does before CloudFormation sees the template: each local zip (or folder)
    # is uploaded and its CodeUri replaced by the object's S3 URI.
    for name, function in functions.items():
        template["Resources"][name].setdefault("Properties", {})["CodeUri"] = f"s3://artifacts/{function.code_uri}"
    global_function.pop("CodeUri", None)
    output = transform(copy.deepcopy(template), PARAMETERS, OfflinePolicies())
    resources = output["Resources"]
    check, results = checker()

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
    check("parameter DbHostOverride is gone (DbHost, DbProxyEndpoint)", "DbHostOverride" not in declared)
    for parameter in ["DbHost", "DbPort", "DbName", "DbProxyEndpoint", "DbSslRootCert"]:
        check(f"parameter {parameter} is optional (empty by default)",
              declared.get(parameter, {}).get("Default") == "", declared.get(parameter))
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
    methods = {method for f in functions.values() for method, _ in f.routes}
    check(f"CORS allows every method a route takes ({', '.join(sorted(methods))}) and OPTIONS",
          set(cors.get("allowMethods", [])) == methods | {"OPTIONS"}, cors.get("allowMethods"))

    apis = {n: r for n, r in resources.items() if r["Type"] == "AWS::ApiGatewayV2::Api"}
    check("two HTTP APIs: the auth API and the admin API", sorted(apis) == ["AdminApi", "AuthApi"], sorted(apis))
    routes = {}
    for api_name, api in sorted(apis.items()):
        body = api["Properties"]["Body"]
        api_routes = routes_to(body, functions)
        routes.update(api_routes)
        admin = api_name == "AdminApi"
        check(f"{api_name} serves {'only' if admin else 'no'} /admin/ routes",
              bool(api_routes) and all(route[1].startswith("/admin/") == admin for route in api_routes),
              sorted(api_routes))
        for route_path, methods in body["paths"].items():
            for method, operation in methods.items():
                iam = operation.get("security") == [{"AWS_IAM": []}]
                check(f"{api_name} {method.upper()} {route_path} {'needs' if admin else 'does not need'} AWS_IAM authorization",
                      iam == admin, operation.get("security"))
        if admin:
            for name in sorted({target for target in api_routes.values() if target}):
                origin = functions[name].variables.get("ORIGIN_VERIFY_SECRET", "")
                check(f"{name} (admin API, no CDN in front) requires no origin header", origin == "", origin)
            check("the admin API has no CORS configuration (no browser calls it)",
                  "x-amazon-apigateway-cors" not in body and "CorsConfiguration" not in api["Properties"], sorted(body))
            scheme = body.get("components", {}).get("securitySchemes", {}).get("AWS_IAM", {})
            check("the admin API's AWS_IAM scheme is SigV4", scheme.get("x-amazon-apigateway-authtype") == "awsSigv4", scheme)
    claimed = [(route, name) for name, f in functions.items() for route in f.routes]
    expected_routes = dict(claimed)
    check("no two functions' HttpApi events claim the same route", len(expected_routes) == len(claimed),
          sorted(r for r, _ in claimed if [c for c, _ in claimed].count(r) > 1))
    check(f"the API has exactly the routes of the functions' HttpApi events ({len(expected_routes)})",
          routes == expected_routes,
          {"missing": sorted(set(expected_routes.items()) - set(routes.items()), key=str),
           "unexpected": sorted(set(routes.items()) - set(expected_routes.items()), key=str)})

    root = os.path.dirname(os.path.abspath(path))
    check_structure(functions, migration, token_keys_of(root, functions), check)
    check_functions(source, resources, functions, migration, check)
    check("the template's Rules reach CloudFormation through the SAM translator",
          source.get("Rules") and output.get("Rules") == source.get("Rules"), sorted(output.get("Rules", {})))
    check_vpc_options(source, template, check)
    check_issuer(source, template, functions, check)
    check_observability(source, output, functions, check)
    check_migration(template, resources, functions, migration, check)
    check_secrets_kms_key(source, resources, functions, check)
    check_mail(source, resources, functions, check)
    check_security_events_out(source, resources, functions, migration, check)

    scheduled = {name for name, f in functions.items() if f.scheduled}
    rules = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    targets = [t["Arn"] for r in rules for t in r["Properties"].get("Targets", [])]
    targeted = [arn["Fn::GetAtt"][0] if isinstance(arn, dict) and "Fn::GetAtt" in arn else arn for arn in targets]
    check("each EventBridge rule targets a function with a Schedule event, and each such function is targeted once",
          bool(scheduled) and sorted(targeted) == sorted(scheduled), {"targets": targeted, "scheduled": sorted(scheduled)})
    outputs = output.get("Outputs", {})
    missing = sorted(({"ApiUrl", "AdminApiUrl"} | {f"{n}Name" for n in functions}) - set(outputs))
    check("outputs name both APIs' URLs and every function (<LogicalId>Name)", not missing, missing)
    wrong = sorted(n for n in functions if f"{n}Name" in outputs and outputs[f"{n}Name"].get("Value") != {"Ref": n})
    check("each <LogicalId>Name output is that function's name (!Ref)", not wrong, wrong)

    # Power tuning measures what a request costs at each size, so every function behind a route
    # needs its row; a function no route reaches (invoked by the deploy) is left out.
    benchmarks = os.path.join(os.path.dirname(os.path.abspath(path)), "BENCHMARKS.md")
    tuned = power_tuned_binaries(benchmarks)
    served = {f.binary or name for name, f in functions.items() if f.routes}
    untuned = sorted(served - set(tuned or {}))
    check("BENCHMARKS.md section 9 (power tuning) chooses a MemorySize for every function that serves a route",
          tuned is not None and not untuned,
          "no section 9 with a `| function | MemorySize |` table" if tuned is None else f"no row for {', '.join(untuned)}")
    sizes = {f.binary or name: resources[name]["Properties"].get("MemorySize") for name, f in functions.items()}
    differ = {binary: (sizes.get(binary), chosen) for binary, chosen in (tuned or {}).items()
              if binary in served and str(sizes.get(binary)) != str(chosen)}
    check("each function that serves a route has the MemorySize BENCHMARKS.md section 9 chose for it", not differ,
          {binary: f"template {have}, section 9 {chosen}" for binary, (have, chosen) in differ.items()})

    passed, failed = results.count(True), results.count(False)
    print(f"template: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
