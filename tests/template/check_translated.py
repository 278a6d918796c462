"""Transforms template.yaml with the SAM translator, offline, and checks what CloudFormation
would get: every function with its runtime, architecture, code (the zip `make package` writes),
routes and least-privilege policies (a verifier never reads the signing secret; only the three
functions that send mail may call SES, and only to send from MailIdentity), the required
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
MIGRATION_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/db-migration-AbCdEf"
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SIGNING_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/signing-AbCdEf"
VERIFICATION_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/verification-AbCdEf"
PARAMETERS = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "auth",
    "DbSecretArn": DB_SECRET,
    "DbMigrationSecretArn": MIGRATION_SECRET,
    "SigningKeySecretArn": SIGNING_SECRET,
    "VerificationKeysSecretArn": VERIFICATION_SECRET,
    "SubnetIds": "subnet-1,subnet-2",
    "SecurityGroupIds": "sg-1",
    "MailFrom": "Example <no-reply@example.com>",
    "MailIdentity": "example.com",
    "AppUrl": "https://app.example.com",
}
# secret ARN -> the environment variable that names it to a function
SECRET_VARIABLES = {
    DB_SECRET: "DB_SECRET_ARN",
    SIGNING_SECRET: "JWT_SIGNING_KEY_SECRET_ARN",
    VERIFICATION_SECRET: "JWT_VERIFICATION_KEYS_SECRET_ARN",
}
# The migrate function connects as the schema owner (DB_SECRET_ARN) and reads the application
# secret only for the role it grants to (DB_APPLICATION_SECRET_ARN).
MIGRATE_SECRET_VARIABLES = {MIGRATION_SECRET: "DB_SECRET_ARN", DB_SECRET: "DB_APPLICATION_SECRET_ARN"}
REQUIRED_SECRET_PARAMETERS = ["DbSecretArn", "DbMigrationSecretArn", "SigningKeySecretArn", "VerificationKeysSecretArn"]
# The mail identity's ARN as deployed with PARAMETERS: the one resource ses:SendEmail may name.
MAIL_IDENTITY_ARN = "arn:aws:ses:eu-west-1:123456789012:identity/example.com"
# The mail settings (variable -> the parameter it names), told to the sending functions only.
MAIL_VARIABLES = {"MAIL_FROM": "MailFrom", "APP_URL": "AppUrl", "MAIL_HOURLY_LIMIT": "MailHourlyLimit"}

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
    "VerifyEmailFunction": ("verify-email", {("POST", "/auth/verify-email")}, {DB_SECRET}, True),
    "ResendVerificationFunction": (
        "resend-verification", {("POST", "/auth/verify-email/resend")}, {DB_SECRET, VERIFICATION_SECRET}, True,
    ),
    "ForgotPasswordFunction": ("forgot-password", {("POST", "/auth/password/forgot")}, {DB_SECRET}, True),
    "ResetPasswordFunction": ("reset-password", {("POST", "/auth/password/reset")}, {DB_SECRET, SIGNING_SECRET}, True),
    "ChangePasswordFunction": (
        "change-password", {("POST", "/auth/password/change")}, {DB_SECRET, VERIFICATION_SECRET}, True,
    ),
    "DeleteAccountFunction": ("delete-account", {("DELETE", "/auth/me")}, {DB_SECRET, VERIFICATION_SECRET}, True),
    "SessionsFunction": ("sessions", {("GET", "/auth/sessions")}, {DB_SECRET, VERIFICATION_SECRET}, True),
    "RevokeSessionFunction": (
        "revoke-session", {("DELETE", "/auth/sessions/{id}")}, {DB_SECRET, VERIFICATION_SECRET}, True,
    ),
    "MigrateFunction": ("migrate", set(), {MIGRATION_SECRET, DB_SECRET}, True),
}
VERIFIERS = [name for name, (_, _, secrets, _) in FUNCTIONS.items() if VERIFICATION_SECRET in secrets]
# The functions that send mail (signup's verification mail, the resent one, the reset link).
MAILERS = ["SignupFunction", "ResendVerificationFunction", "ForgotPasswordFunction"]
# Functions power tuning has not measured yet -> the measured function whose MemorySize they
# take meanwhile (argon2 like login, or a query or two like me). Once BENCHMARKS.md measures
# one, its measured size is the one checked.
SIZED_BY_ANALOGY = {
    "reset-password": "login",
    "change-password": "login",
    "delete-account": "login",
    "verify-email": "me",
    "resend-verification": "me",
    "forgot-password": "me",
    "sessions": "me",
    "revoke-session": "me",
}
# Environment every function gets (Globals), with the value it has by default.
GLOBAL_VARIABLES = {
    "DB_SSLMODE": {"Ref": "DbSslMode"},
    "DB_SSL_ROOT_CERT": {"Ref": "DbSslRootCert"},
    "DB_PORT": {"Ref": "DbPort"},
    "DB_NAME": {"Ref": "DbName"},
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


def checker():
    """A `check(name, condition, detail)` that prints ok or FAIL, and the results it keeps."""
    results = []

    def check(name, condition, detail=""):
        results.append(condition)
        print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))

    return check, results


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


def alarms_by_metric(resources):
    """metric name -> the alarm's properties; a metric-math alarm counts under the one metric
    its MetricStat queries read."""
    alarms = {}
    for resource in resources.values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        names = {properties["MetricName"]} if "MetricName" in properties else {
            query["MetricStat"]["Metric"]["MetricName"] for query in properties.get("Metrics", []) if "MetricStat" in query
        }
        for name in names:
            alarms[name] = properties
    return alarms


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
                 and r["Properties"].get("VpcEndpointType") == "Interface"]
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


def check_issuer(source, template, check):
    """By default the functions derive the issuer (JWT_ISSUER empty, no second deploy); with a
    custom domain it is https://DomainName, served through the domain's resources; the outputs
    name the issuer, the JWKS and the discovery document either way."""
    declared = source["Parameters"]
    check("parameter Issuer defaults to empty (derived)", declared.get("Issuer", {}).get("Default") == "",
          declared.get("Issuer"))
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
                            parameters, conditions) for f in FUNCTIONS}
        check(f"{name} every function's JWT_ISSUER is {expected_issuer!r}", issuers == {expected_issuer}, issuers)
        outputs = {k: evaluate(v["Value"], parameters, conditions) for k, v in output.get("Outputs", {}).items()}
        check(f"{name} the IssuerUrl output is {expected_output}", outputs.get("IssuerUrl") == expected_output,
              outputs.get("IssuerUrl"))
        for key, path in [("JwksUrl", "/.well-known/jwks.json"),
                          ("OpenIdConfigurationUrl", "/.well-known/openid-configuration")]:
            value = json.dumps(outputs.get(key))
            check(f"{name} the {key} output is the issuer's {path}",
                  path in value and (json.dumps(expected_output).strip('"') in value
                                     or "${AuthApi}.execute-api" in value), value)
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


def check_observability(source, output, check):
    """Log groups with a retention for every function and for the API's access logs, alarms
    with the right missing-data treatment, login metrics, tracing off by default, and reserved
    concurrency for login and signup."""
    resources = output["Resources"]
    declared = source["Parameters"]
    check("parameter LogRetentionDays defaults to 30", str(declared.get("LogRetentionDays", {}).get("Default")) == "30")
    check("parameter TracingMode defaults to PassThrough", declared.get("TracingMode", {}).get("Default") == "PassThrough")
    retention = {"Ref": "LogRetentionDays"}
    for name in FUNCTIONS:
        props = resources[name]["Properties"]
        logging = props.get("LoggingConfig", {})
        group = resources.get(logging.get("LogGroup", {}).get("Ref", ""), {})
        check(f"{name} logs JSON into a log group of the stack with LogRetentionDays",
              logging.get("LogFormat") == "JSON" and group.get("Type") == "AWS::Logs::LogGroup"
              and group["Properties"].get("RetentionInDays") == retention, logging)
        check(f"{name} traces as TracingMode says", props.get("TracingConfig") == {"Mode": {"Ref": "TracingMode"}},
              props.get("TracingConfig"))
    stage = next(r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage")
    access = stage["Properties"].get("AccessLogSettings", {})
    destination = access.get("DestinationArn", {}).get("Fn::GetAtt", [""])[0]
    access_group = resources.get(destination, {})
    try:
        fields = json.loads(access.get("Format", ""))
    except ValueError:
        fields = {}
    check("the API writes JSON access logs (request id, route, status, latency) to a log group with LogRetentionDays",
          access_group.get("Type") == "AWS::Logs::LogGroup"
          and access_group["Properties"].get("RetentionInDays") == retention
          and {"requestId", "routeKey", "status", "responseLatency"} <= set(fields), access)

    alarms = alarms_by_metric(resources)
    for metric, treatment in [("DatabaseHealthy", "breaching"), ("Errors", "notBreaching"),
                              ("5xx", "notBreaching"), ("LoginFailed", "notBreaching"),
                              ("LoginThrottled", "notBreaching")]:
        check(f"the {metric} alarm treats missing data as {treatment}",
              alarms.get(metric, {}).get("TreatMissingData") == treatment, alarms.get(metric))
    for metric, threshold in [("LoginFailed", "LoginFailureAlarmThreshold"),
                              ("LoginThrottled", "LoginThrottledAlarmThreshold")]:
        alarm = alarms.get(metric, {})
        check(f"the {metric} alarm watches the login function in MetricsNamespace, above {threshold}",
              alarm.get("Namespace") == {"Ref": "MetricsNamespace"}
              and alarm.get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": "LoginFunction"}}]
              and alarm.get("Threshold") == {"Ref": threshold}, alarm)
    server_errors = alarms.get("5xx", {})
    check("the 5xx alarm watches the HTTP API by ApiId",
          server_errors.get("Namespace") == "AWS/ApiGateway"
          and server_errors.get("Dimensions") == [{"Name": "ApiId", "Value": {"Ref": "AuthApi"}}], server_errors)
    check("every function is told METRICS_NAMESPACE",
          all(resources[n]["Properties"]["Environment"]["Variables"].get("METRICS_NAMESPACE") == {"Ref": "MetricsNamespace"}
              for n in FUNCTIONS))

    for function, parameter in [("LoginFunction", "LoginReservedConcurrency"),
                                ("SignupFunction", "SignupReservedConcurrency")]:
        reserved = resources[function]["Properties"].get("ReservedConcurrentExecutions")
        unreserved, unreserved_conditions = deployed_values(source, PARAMETERS)
        bounded, bounded_conditions = deployed_values(source, dict(PARAMETERS, **{parameter: "5"}))
        check(f"{function} is unreserved by default and reserves {parameter} when set",
              evaluate({"x": reserved}, unreserved, unreserved_conditions) == {}
              and evaluate(reserved, bounded, bounded_conditions) == "5", reserved)
        check(f"the Rules refuse {parameter} 0 (it would disable the function)",
              bool(refused_by_rules(source, dict(PARAMETERS, **{parameter: "0"})))
              and not refused_by_rules(source, dict(PARAMETERS, **{parameter: "5"})))


def check_migration(template, resources, check):
    """The deploy migrates: a custom resource invoking the migrate function's published alias,
    bound to its published version (so a code change re-runs it), that every database function
    waits for."""
    custom = {name: r for name, r in resources.items()
              if r["Type"] == "AWS::CloudFormation::CustomResource" or r["Type"].startswith("Custom::")}
    check("one custom resource, Migration", list(custom) == ["Migration"], list(custom))
    migration = custom.get("Migration", {}).get("Properties", {})
    alias = next((n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Alias"
                  and r["Properties"].get("FunctionName") == {"Ref": "MigrateFunction"}), None)
    check("the migrate function has a published alias", alias is not None)
    check("Migration's ServiceToken is the migrate function's alias (an ARN that never changes)",
          migration.get("ServiceToken") == {"Ref": alias}, migration.get("ServiceToken"))
    timeout = int(template["Resources"]["MigrateFunction"]["Properties"].get("Timeout", 3))
    check("without an answer the deploy fails within 10 minutes, after Lambda's two retries",
          3 * timeout <= int(migration.get("ServiceTimeout", 3600)) <= 600, migration.get("ServiceTimeout"))
    code_version = migration.get("CodeVersion")
    version = code_version.get("Ref", "") if isinstance(code_version, dict) else ""
    check("Migration's CodeVersion is the migrate function's published version",
          resources.get(version, {}).get("Type") == "AWS::Lambda::Version"
          and resources[version]["Properties"].get("FunctionName") == {"Ref": "MigrateFunction"},
          migration.get("CodeVersion"))
    # What `sam deploy` does when the migrate zip changes: a new S3 key, so a new version
    # resource, so a new CodeVersion: CloudFormation sends Migration an Update.
    changed = copy.deepcopy(template)
    changed["Resources"]["MigrateFunction"]["Properties"]["CodeUri"] += ".changed"
    changed_resources = transform(changed, PARAMETERS, OfflinePolicies())["Resources"]
    changed_version = changed_resources["Migration"]["Properties"].get("CodeVersion")
    check("new migrate code changes Migration's CodeVersion (the migration runs again)",
          changed_version != migration.get("CodeVersion"), changed_version)
    database_functions = [n for n, (_, _, secrets, _) in FUNCTIONS.items() if DB_SECRET in secrets and n != "MigrateFunction"]
    for name in database_functions:
        depends = resources.get(name, {}).get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else depends
        check(f"{name} changes only after the migration (DependsOn Migration)", "Migration" in depends, depends)


def check_secrets_kms_key(source, resources, check):
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
    readers = {f"{n}Role" for n, (_, _, secrets, _) in FUNCTIONS.items() if secrets}
    roles = {role.get("Ref") for role in policy["Properties"]["Roles"]}
    check("every function that reads a secret may decrypt with the key", roles == readers, sorted(roles ^ readers))
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    expected = [{
        "Effect": "Allow", "Action": "kms:Decrypt", "Resource": {"Ref": "SecretsKmsKeyArn"},
        "Condition": {"StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}},
    }]
    check("kms:Decrypt on that key only, through Secrets Manager in the stack's region", statements == expected, statements)


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


def check_mail(source, resources, check):
    """Mail: MailFrom, MailIdentity and AppUrl are required and checked by pattern (no IAM
    wildcard can reach the policy, no header can be injected, the links are https); the three
    sending functions, and no other, are told the mail settings and may call ses:SendEmail, on
    the MailIdentity identity only; login alone is told REQUIRE_VERIFIED_EMAIL; one alarm sums
    MailRejected over the three."""
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
    verified = declared.get("RequireVerifiedEmail", {})
    check("parameter RequireVerifiedEmail defaults to false and allows only true and false",
          verified.get("Default") == "false" and sorted(verified.get("AllowedValues", [])) == ["false", "true"], verified)

    for name in FUNCTIONS:
        variables = resources[name]["Properties"].get("Environment", {}).get("Variables", {})
        told = {variable: variables.get(variable) for variable in MAIL_VARIABLES if variable in variables}
        expected = {variable: {"Ref": parameter} for variable, parameter in MAIL_VARIABLES.items()} if name in MAILERS else {}
        check(f"{name} is told {'the mail settings (MAIL_FROM, APP_URL, MAIL_HOURLY_LIMIT)' if name in MAILERS else 'no mail setting'}",
              told == expected, told)
        require = variables.get("REQUIRE_VERIFIED_EMAIL")
        expected_require = {"Ref": "RequireVerifiedEmail"} if name == "LoginFunction" else None
        check(f"{name} is {'told REQUIRE_VERIFIED_EMAIL from RequireVerifiedEmail' if expected_require else 'not told REQUIRE_VERIFIED_EMAIL'}",
              require == expected_require, require)

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
    check("only the three sending functions' roles may call SES",
          set(holders) == {f"{name}Role" for name in MAILERS}, sorted(holders))
    for name in MAILERS:
        statements, managed = holders.get(f"{name}Role", ([], []))
        statement = statements[0] if len(statements) == 1 else {}
        action = statement.get("Action")
        check(f"{name} may call SES through exactly one statement and no managed policy",
              len(statements) == 1 and not managed, (statements, managed))
        check(f"{name}'s SES statement allows ses:SendEmail alone, unconditionally",
              statement.get("Effect") == "Allow" and action in ("ses:SendEmail", ["ses:SendEmail"])
              and set(statement) == {"Effect", "Action", "Resource"}, statement)
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
          watched == sorted(MAILERS) and len(stats) == len(MAILERS)
          and all(s["Metric"].get("Namespace") == {"Ref": "MetricsNamespace"} and s["Metric"].get("MetricName") == "MailRejected"
                  and s.get("Stat") == "Sum" and s.get("Period") == 300 for s in stats.values())
          and not any(q.get("ReturnData", True) for q in queries if "MetricStat" in q), queries)
    returned = [q for q in queries if q.get("ReturnData", True)]
    expression = returned[0].get("Expression", "") if len(returned) == 1 else ""
    summed = re.fullmatch(r"SUM\(\[([^\]]*)\]\)", expression.replace(" ", ""))
    check("the MailRejected alarm sums the three (SUM over the queries, the one it returns)",
          summed is not None and sorted(summed[1].split(",")) == sorted(stats), expression)
    check("the MailRejected alarm fires on one rejected mail in 5 minutes, and no data is not breaching",
          alarm.get("Threshold") == 1 and alarm.get("ComparisonOperator") == "GreaterThanOrEqualToThreshold"
          and alarm.get("EvaluationPeriods") == 1 and alarm.get("TreatMissingData") == "notBreaching", alarm)
    for topic, expected in [("", None), ("arn:aws:sns:eu-west-1:123456789012:alarms", ["arn:aws:sns:eu-west-1:123456789012:alarms"])]:
        topic_values, topic_conditions = deployed_values(source, dict(PARAMETERS, AlarmTopicArn=topic))
        actions = evaluate({"x": alarm.get("AlarmActions")}, topic_values, topic_conditions).get("x")
        check(f"the MailRejected alarm notifies {'AlarmTopicArn' if topic else 'no one without AlarmTopicArn'}",
              actions == expected, actions)


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
    methods = {method for _, routes, _, _ in FUNCTIONS.values() for method, _ in routes}
    check(f"CORS allows every method a route takes ({', '.join(sorted(methods))}) and OPTIONS",
          set(cors.get("allowMethods", [])) == methods | {"OPTIONS"}, cors.get("allowMethods"))

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
        secret_variables = MIGRATE_SECRET_VARIABLES if name == "MigrateFunction" else SECRET_VARIABLES
        for variable in sorted(set(SECRET_VARIABLES.values()) | set(MIGRATE_SECRET_VARIABLES.values())):
            secret = next((s for s, v in secret_variables.items() if v == variable), None)
            told = variable in variables
            check(f"{name} is told {variable} iff it may read that secret", told == (secret in secrets), variables)
            if told:
                value = resolve(variables[variable])
                check(f"{name}'s {variable} names that secret", value == secret, value)
        check(f"{name} is told no obsolete JWT_KEYS_SECRET_ARN", "JWT_KEYS_SECRET_ARN" not in variables)
        for variable, value in GLOBAL_VARIABLES.items():
            check(f"{name} gets {variable} from {value['Ref']}", variables.get(variable) == value, variables.get(variable))
        if vpc:
            # The API connects through DbProxyEndpoint when there is one, as a transaction
            # pooler's client; migrate (a session-level advisory lock) always goes to DbHost.
            for proxy, overrides in [(False, {"DbHost": "db.internal"}),
                                     (True, {"DbHost": "db.internal", "DbProxyEndpoint": "auth.proxy-x.rds.amazonaws.com"})]:
                values, conditions = deployed_values(source, {**PARAMETERS, **overrides})
                through_proxy = proxy and name != "MigrateFunction"
                host = evaluate(variables.get("DB_HOST"), values, conditions)
                pooler = evaluate(variables.get("DB_TRANSACTION_POOLER"), values, conditions)
                expected = ("auth.proxy-x.rds.amazonaws.com", "true") if through_proxy else ("db.internal", "false")
                check(f"{name} connects to {expected[0]} with DB_TRANSACTION_POOLER={expected[1]}"
                      f" ({'with' if proxy else 'without'} DbProxyEndpoint)",
                      (host, pooler) == expected, (host, pooler))

    check("the template's Rules reach CloudFormation through the SAM translator",
          source.get("Rules") and output.get("Rules") == source.get("Rules"), sorted(output.get("Rules", {})))
    check_vpc_options(source, template, check)
    check_issuer(source, template, check)
    check_observability(source, output, check)
    check_migration(template, resources, check)
    check_secrets_kms_key(source, resources, check)
    check_mail(source, resources, check)

    benchmarks = os.path.join(os.path.dirname(os.path.abspath(path)), "BENCHMARKS.md")
    chosen = benchmarked_sizes(benchmarks)
    api_binaries = {binary for name, (binary, *_) in FUNCTIONS.items() if name != "MigrateFunction"}
    unmeasured = api_binaries - set(chosen)
    check("BENCHMARKS.md chooses a MemorySize for every API function but the ones sized by analogy, and no other",
          set(chosen) <= api_binaries and unmeasured <= set(SIZED_BY_ANALOGY), sorted(unmeasured - set(SIZED_BY_ANALOGY)))
    check("every size by analogy names an API function and a function BENCHMARKS.md measured",
          set(SIZED_BY_ANALOGY) <= api_binaries and set(SIZED_BY_ANALOGY.values()) <= set(chosen),
          {b: a for b, a in SIZED_BY_ANALOGY.items() if b not in api_binaries or a not in chosen})
    for name, (binary, *_) in FUNCTIONS.items():
        # Lambda's default, 128 MB, when the template sets none (migrate runs once per deploy).
        size = resources.get(name, {}).get("Properties", {}).get("MemorySize", 128)
        if binary in chosen or binary not in SIZED_BY_ANALOGY:
            check(f"{name}'s MemorySize is the size the power tuning chose ({chosen.get(binary, 128)} MB)",
                  size == chosen.get(binary, 128), size)
        else:
            analogue = SIZED_BY_ANALOGY[binary]
            check(f"{name}'s MemorySize, until power tuning measures it, is {analogue}'s ({chosen.get(analogue)} MB)",
                  size == chosen.get(analogue), size)

    rules = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    health_targets = [
        t for r in rules for t in r["Properties"].get("Targets", []) if "HealthFunction" in json.dumps(t["Arn"])
    ]
    check("an EventBridge schedule invokes the health function", len(health_targets) == 1, rules)
    alarms = set(alarms_by_metric(resources))
    check("alarms watch DatabaseHealthy, function Errors and API 5xx", {"DatabaseHealthy", "Errors", "5xx"} <= alarms, alarms)
    outputs = set(output.get("Outputs", {}))
    check("outputs name the API URL and every function", {"ApiUrl"} | {f"{n}Name" for n in FUNCTIONS} <= outputs, outputs)

    passed, failed = results.count(True), results.count(False)
    print(f"template: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
