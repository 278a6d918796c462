"""Translates the Lambda Managed Instances variant of template.yaml
(scripts/managed-instances-template) with the SAM translator, offline, and checks what
CloudFormation would get: the capacity provider in the stack's subnets and security groups, on
arm64, with its operator role; the API's database functions (in the VPC, behind a route) on it
with the concurrency parameter, 2,048 MB and no VpcConfig of their own; the others on-demand.

Run: .venv/bin/python tests/template/check_managed_instances.py [template.yaml]
"""

import copy
import importlib.machinery
import importlib.util
import json
import os
import sys
import tempfile

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from check_translated import PARAMETERS, OfflinePolicies, checker  # noqa: E402


def generator():
    path = os.path.join(HERE, "../../scripts/managed-instances-template")
    loader = importlib.machinery.SourceFileLoader("managed_instances_template", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def main(path):
    module = generator()
    with tempfile.TemporaryDirectory() as out_dir:
        out = os.path.join(out_dir, "template.json")
        sys.argv = ["managed-instances-template", path, out]
        module.main()
        with open(out) as handle:
            template = json.load(handle)
    for resource in template["Resources"].values():
        if "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = "s3://artifacts/bootstrap.zip"
    output = transform(copy.deepcopy(template), PARAMETERS, OfflinePolicies())
    resources = output["Resources"]
    check, results = checker()

    providers = {n: r for n, r in resources.items() if r["Type"] == "AWS::Lambda::CapacityProvider"}
    check("one capacity provider", len(providers) == 1, list(providers))
    provider = next(iter(providers.values()), {}).get("Properties", {})
    check("it places its instances in SubnetIds with SecurityGroupIds",
          provider.get("VpcConfig") == {"SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": {"Ref": "SecurityGroupIds"}},
          provider.get("VpcConfig"))
    check("on arm64 instances, as the zips are built",
          provider.get("InstanceRequirements", {}).get("Architectures") == ["arm64"], provider.get("InstanceRequirements"))
    roles = [r for r in resources.values() if r["Type"] == "AWS::IAM::Role"
             and "AWSLambdaManagedEC2ResourceOperator" in json.dumps(r["Properties"].get("ManagedPolicyArns", []))]
    check("with an operator role that may manage its EC2 instances", len(roles) == 1, len(roles))

    with open(path) as handle:
        source = yaml_parse(handle.read())
    functions = {name for name, r in source["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    moved = set(module.moved(source["Resources"]))
    check("some functions move and some stay", moved and functions - moved, sorted(moved))
    for name in sorted(moved):
        properties = resources[name]["Properties"]
        config = properties.get("CapacityProviderConfig", {}).get("LambdaManagedInstancesCapacityProviderConfig", {})
        check(f"{name} runs on the capacity provider, ManagedInstancesConcurrency invocations at once",
              config.get("CapacityProviderArn") == {"Fn::GetAtt": ["CapacityProvider", "Arn"]}
              and config.get("PerExecutionEnvironmentMaxConcurrency") == {"Ref": "ManagedInstancesConcurrency"},
              config)
        check(f"{name} has no VpcConfig of its own and at least 2,048 MB",
              "VpcConfig" not in properties and properties.get("MemorySize", 0) >= module.MINIMUM_MEMORY_MB,
              (properties.get("VpcConfig"), properties.get("MemorySize")))
    for name in sorted(functions - moved):
        check(f"{name} stays on-demand", "CapacityProviderConfig" not in resources[name]["Properties"])
        routes = [e for e in source["Resources"][name]["Properties"].get("Events", {}).values() if e["Type"] == "HttpApi"]
        check(f"{name} stays because it has no database or serves no route",
              "VpcConfig" not in source["Resources"][name]["Properties"] or not routes)
    check("the concurrency is a parameter, default 8",
          template["Parameters"]["ManagedInstancesConcurrency"]["Default"] == 8)
    check("a rule refuses the variant without the VPC", "ManagedInstancesNeedTheVpc" in template.get("Rules", {}))

    print(f"{sum(results)}/{len(results)} Managed Instances checks passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
