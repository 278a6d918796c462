//! The parts of an AWS SAM template the emulator serves: each function's binary, environment,
//! limits and HttpApi routes (with the routes that need `AWS_IAM` authorization), with `!Ref` and
//! `!Sub` resolved against the parameters given (`--parameter-overrides`, as a deploy gives
//! them), else their defaults. A parameter with neither resolves to nothing: its variables are
//! left out, for the `--env-vars` overrides to give.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value as Json;
use serde_yaml::Value;

/// The account id the emulator pretends to run in.
pub const ACCOUNT_ID: &str = "123456789012";

/// Lambda's defaults when neither the function nor `Globals` sets a limit.
const DEFAULT_TIMEOUT_SECONDS: u64 = 3;
const DEFAULT_MEMORY_MB: u32 = 128;

/// The functions of a SAM template.
#[derive(Debug, Clone)]
pub struct Template {
    pub functions: Vec<FunctionSpec>,
}

/// One `AWS::Serverless::Function`, merged with `Globals.Function`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// The resource's logical id, e.g. `GreetFunction`.
    pub logical_id: String,
    /// `FunctionName`, when the template sets a plain one.
    pub function_name: Option<String>,
    /// The executable's file name: `<fn>` of the `CodeUri` `target/lambda/<fn>/bootstrap.zip`
    /// that `make package` writes and `sam deploy` ships.
    pub binary: String,
    pub handler: String,
    pub runtime: String,
    pub timeout: Duration,
    pub memory_size_mb: u32,
    /// `Environment.Variables` plus what Lambda derives from `LoggingConfig`.
    pub environment: BTreeMap<String, String>,
    /// The HttpApi events; other event types are not served.
    pub routes: Vec<RouteSpec>,
    /// The keys of those routes that their HTTP API authorizes with `AWS_IAM`: the event's
    /// `Auth.Authorizer`, else the API's `Auth.DefaultAuthorizer` (see [`Self::requires_iam`]).
    pub iam_routes: BTreeSet<String>,
    /// The expressions of its `Schedule` events (EventBridge invokes it directly with a
    /// scheduled event; the emulator does not, a tool may).
    pub schedules: Vec<String>,
    /// Whether a custom resource of the stack has it as its `ServiceToken`: CloudFormation
    /// invokes it directly at each deploy (the migration).
    pub custom_resource: bool,
}

/// An HttpApi event's route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSpec {
    /// `METHOD /path`; `method` is upper case, `ANY` matches every method.
    Route { method: String, path: String },
    /// The `$default` route, which catches requests no other route matches.
    Default,
}

impl FunctionSpec {
    /// Whether a request on `route`, one of this function's, must be signed (AWS Signature
    /// Version 4) by an IAM principal.
    pub fn requires_iam(&self, route: &RouteSpec) -> bool {
        self.iam_routes.contains(&route.key())
    }
}

impl RouteSpec {
    /// The route key as API Gateway writes it (`routeKey`).
    pub fn key(&self) -> String {
        match self {
            Self::Route { method, path } => format!("{method} {path}"),
            Self::Default => "$default".to_owned(),
        }
    }
}

impl Template {
    /// Reads and parses a template file, its parameters at their defaults.
    pub fn load(path: &Path, region: &str) -> anyhow::Result<Self> {
        Self::load_with(path, region, &BTreeMap::new())
    }

    /// Reads and parses a template file with `parameters` (name to value) over the defaults.
    pub fn load_with(
        path: &Path,
        region: &str,
        parameters: &BTreeMap<String, String>,
    ) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse_with(&text, region, parameters).with_context(|| format!("parsing {}", path.display()))
    }

    /// Parses a template's text, its parameters at their defaults. `region` answers `AWS::Region`.
    pub fn parse(text: &str, region: &str) -> anyhow::Result<Self> {
        Self::parse_with(text, region, &BTreeMap::new())
    }

    /// Parses a template's text with `parameters` over the defaults. A name the template does
    /// not declare is an error, as it is for CloudFormation.
    pub fn parse_with(
        text: &str,
        region: &str,
        parameters: &BTreeMap<String, String>,
    ) -> anyhow::Result<Self> {
        let root: Value = serde_yaml::from_str(text).context("the template is not valid YAML")?;
        let resolver = Resolver::new(&root, region, parameters)?;
        let globals = root.get("Globals").and_then(|g| g.get("Function"));
        let resources =
            root.get("Resources").and_then(Value::as_mapping).context("the template has no Resources")?;
        let apis = HttpApis::new(&root, resources, &resolver)?;
        let mut functions = Vec::new();
        let mut service_tokens = Vec::new();
        for (id, resource) in resources {
            let Some(id) = id.as_str() else { continue };
            match resource.get("Type").and_then(Value::as_str) {
                Some("AWS::Serverless::Function") => functions.push(
                    function_spec(id, resource, globals, &apis, &resolver)
                        .with_context(|| format!("function {id}"))?,
                ),
                Some(kind)
                    if kind == "AWS::CloudFormation::CustomResource" || kind.starts_with("Custom::") =>
                {
                    let token = resource.get("Properties").and_then(|p| p.get("ServiceToken"));
                    service_tokens.extend(token.and_then(referenced_resource));
                }
                _ => {}
            }
        }
        for function in &mut functions {
            function.custom_resource = service_tokens.contains(&function.logical_id);
        }
        Ok(Self { functions })
    }
}

fn function_spec(
    id: &str,
    resource: &Value,
    globals: Option<&Value>,
    apis: &HttpApis,
    resolver: &Resolver,
) -> anyhow::Result<FunctionSpec> {
    let empty = Value::Null;
    let props = resource.get("Properties").unwrap_or(&empty);
    let globals = globals.unwrap_or(&empty);
    // A function's own property wins over the global one, as in SAM.
    let property = |name: &str| props.get(name).or_else(|| globals.get(name));
    let scalar = |name: &str| property(name).and_then(|value| resolver.scalar(value));

    let code_uri = scalar("CodeUri").context("the function has no CodeUri")?;
    let binary = binary_of(&code_uri).with_context(|| {
        format!(
            "CodeUri {code_uri:?} is not target/lambda/<function>/bootstrap.zip (what make package writes)"
        )
    })?;
    let timeout = match scalar("Timeout") {
        Some(raw) => {
            raw.parse::<u64>().with_context(|| format!("Timeout {raw:?} is not a whole number of seconds"))?
        }
        None => DEFAULT_TIMEOUT_SECONDS,
    };
    let memory_size_mb = match scalar("MemorySize") {
        Some(raw) => {
            raw.parse::<u32>().with_context(|| format!("MemorySize {raw:?} is not a number of MB"))?
        }
        None => DEFAULT_MEMORY_MB,
    };

    let mut environment = BTreeMap::new();
    // Lambda sets these from LoggingConfig; the function's Variables may still override them.
    for source in [globals, props] {
        if let Some(logging) = source.get("LoggingConfig") {
            if let Some(format) = logging.get("LogFormat").and_then(|v| resolver.scalar(v)) {
                environment.insert("AWS_LAMBDA_LOG_FORMAT".to_owned(), format);
            }
            if let Some(level) = logging.get("ApplicationLogLevel").and_then(|v| resolver.scalar(v)) {
                environment.insert("AWS_LAMBDA_LOG_LEVEL".to_owned(), level);
            }
        }
    }
    for source in [globals, props] {
        let variables =
            source.get("Environment").and_then(|e| e.get("Variables")).and_then(Value::as_mapping);
        for (name, value) in variables.into_iter().flatten() {
            let Some(name) = name.as_str() else { continue };
            // An unresolvable value (a resource attribute, an import) has no local meaning.
            match resolver.scalar(value) {
                Some(value) => environment.insert(name.to_owned(), value),
                None => environment.remove(name),
            };
        }
    }

    let mut routes = Vec::new();
    let mut iam_routes = BTreeSet::new();
    let mut schedules = Vec::new();
    for (name, event) in props.get("Events").and_then(Value::as_mapping).into_iter().flatten() {
        match event.get("Type").and_then(Value::as_str) {
            Some("HttpApi") => {}
            Some("Schedule") => {
                let expression = event.get("Properties").and_then(|p| p.get("Schedule"));
                schedules.push(expression.and_then(|e| resolver.scalar(e)).unwrap_or_default());
                continue;
            }
            _ => continue,
        }
        let event_props = event.get("Properties");
        let path = event_props.and_then(|p| p.get("Path")).and_then(|v| resolver.scalar(v));
        let method = event_props.and_then(|p| p.get("Method")).and_then(|v| resolver.scalar(v));
        if let Some(version) =
            event_props.and_then(|p| p.get("PayloadFormatVersion")).and_then(|v| resolver.scalar(v))
            && version != "2.0"
        {
            bail!("HttpApi events with PayloadFormatVersion {version} are not supported (only 2.0)");
        }
        let route = match path {
            None => RouteSpec::Default,
            Some(path) if path == "$default" => RouteSpec::Default,
            Some(path) => {
                if !path.starts_with('/') {
                    bail!("the HttpApi path {path:?} does not start with '/'");
                }
                let method = method.unwrap_or_else(|| "ANY".to_owned()).to_ascii_uppercase();
                let method = if method == "*" { "ANY".to_owned() } else { method };
                RouteSpec::Route { method, path }
            }
        };
        let name = name.as_str().unwrap_or_default();
        if apis.requires_iam(event_props, resolver).with_context(|| format!("event {name}"))? {
            iam_routes.insert(route.key());
        }
        routes.push(route);
    }

    Ok(FunctionSpec {
        logical_id: id.to_owned(),
        function_name: props.get("FunctionName").and_then(|v| resolver.scalar(v)),
        binary,
        handler: scalar("Handler").unwrap_or_else(|| "bootstrap".to_owned()),
        runtime: scalar("Runtime").unwrap_or_else(|| "provided.al2023".to_owned()),
        timeout: Duration::from_secs(timeout),
        memory_size_mb,
        environment,
        routes,
        iam_routes,
        schedules,
        custom_resource: false,
    })
}

/// How each `AWS::Serverless::HttpApi` of the template authorizes its routes, its `Auth` merged
/// over `Globals.HttpApi.Auth` as SAM merges them. An event without `ApiId` belongs to SAM's
/// implicit API, which only the globals configure.
struct HttpApis {
    explicit: BTreeMap<String, ApiAuth>,
    implicit: ApiAuth,
}

#[derive(Debug, Clone, Copy, Default)]
struct ApiAuth {
    /// `EnableIamAuthorizer: true`: SAM accepts `AWS_IAM` on the API's routes.
    iam_enabled: bool,
    /// `DefaultAuthorizer: AWS_IAM`.
    iam_by_default: bool,
}

impl HttpApis {
    fn new(root: &Value, resources: &serde_yaml::Mapping, resolver: &Resolver) -> anyhow::Result<Self> {
        let globals = root.get("Globals").and_then(|g| g.get("HttpApi")).and_then(|api| api.get("Auth"));
        let implicit = ApiAuth::parse(globals, None, resolver).context("Globals.HttpApi.Auth")?;
        let mut explicit = BTreeMap::new();
        for (id, resource) in resources {
            let Some(id) = id.as_str() else { continue };
            if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::HttpApi") {
                continue;
            }
            let own = resource.get("Properties").and_then(|p| p.get("Auth"));
            let auth = ApiAuth::parse(globals, own, resolver).with_context(|| format!("HttpApi {id}"))?;
            explicit.insert(id.to_owned(), auth);
        }
        Ok(Self { explicit, implicit })
    }

    /// Whether the HttpApi event with these properties needs `AWS_IAM`: its own
    /// `Auth.Authorizer` (`AWS_IAM`, `NONE` or another authorizer's name), else its API's
    /// default.
    fn requires_iam(&self, event_props: Option<&Value>, resolver: &Resolver) -> anyhow::Result<bool> {
        let api = match event_props.and_then(|p| p.get("ApiId")) {
            None => self.implicit,
            Some(reference) => {
                let id = referenced_resource(reference).context("ApiId is not a !Ref to an HttpApi")?;
                *self.explicit.get(&id).with_context(|| {
                    format!("ApiId {id} is not an AWS::Serverless::HttpApi of the template")
                })?
            }
        };
        let authorizer = event_props
            .and_then(|p| p.get("Auth"))
            .and_then(|a| a.get("Authorizer"))
            .and_then(|a| resolver.scalar(a));
        match authorizer.as_deref() {
            None => Ok(api.iam_by_default),
            Some("AWS_IAM") if !api.iam_enabled => {
                bail!(
                    "Authorizer AWS_IAM needs EnableIamAuthorizer: true on its HttpApi (SAM refuses it otherwise)"
                )
            }
            Some(name) => Ok(name == "AWS_IAM"),
        }
    }
}

impl ApiAuth {
    /// An API's `Auth`, its own keys over the globals' ones.
    fn parse(globals: Option<&Value>, own: Option<&Value>, resolver: &Resolver) -> anyhow::Result<Self> {
        let setting = |name: &str| {
            own.and_then(|auth| auth.get(name))
                .or_else(|| globals.and_then(|auth| auth.get(name)))
                .and_then(|value| resolver.scalar(value))
        };
        let iam_enabled = setting("EnableIamAuthorizer").is_some_and(|enabled| enabled == "true");
        let iam_by_default = setting("DefaultAuthorizer").is_some_and(|name| name == "AWS_IAM");
        if iam_by_default && !iam_enabled {
            bail!("DefaultAuthorizer AWS_IAM needs EnableIamAuthorizer: true (SAM refuses it otherwise)");
        }
        Ok(Self { iam_enabled, iam_by_default })
    }
}

/// The logical id a `ServiceToken` names: `!Ref X`, `!Ref X.Alias`, `!GetAtt X.Arn` or
/// `{"Fn::GetAtt": [X, "Arn"]}`.
fn referenced_resource(token: &Value) -> Option<String> {
    let argument = match token {
        Value::Tagged(tagged) => &tagged.value,
        Value::Mapping(map) if map.len() == 1 => map.iter().next()?.1,
        _ => return None,
    };
    let name = match argument {
        Value::String(text) => text.split('.').next()?,
        Value::Sequence(parts) => parts.first()?.as_str()?,
        _ => return None,
    };
    Some(name.to_owned())
}

/// `<fn>` of a `CodeUri` `.../<fn>/bootstrap.zip`: cargo-lambda names each function's folder
/// after its binary.
fn binary_of(code_uri: &str) -> Option<String> {
    let path = Path::new(code_uri);
    if path.file_name()? != "bootstrap.zip" {
        return None;
    }
    let binary = path.parent()?.file_name()?.to_str()?;
    Some(binary.to_owned())
}

/// Resolves intrinsic functions that have a local answer: `Ref` to a parameter (its default) or
/// a pseudo parameter, and `Sub` over those. Anything else resolves to `None`.
struct Resolver {
    values: BTreeMap<String, String>,
}

impl Resolver {
    fn new(root: &Value, region: &str, given: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let mut values = BTreeMap::from([
            ("AWS::Region".to_owned(), region.to_owned()),
            ("AWS::AccountId".to_owned(), ACCOUNT_ID.to_owned()),
            ("AWS::Partition".to_owned(), "aws".to_owned()),
            ("AWS::URLSuffix".to_owned(), "amazonaws.com".to_owned()),
            ("AWS::StackName".to_owned(), "local".to_owned()),
        ]);
        let declared = root.get("Parameters").and_then(Value::as_mapping);
        for (name, parameter) in declared.into_iter().flatten() {
            let (Some(name), Some(default)) = (name.as_str(), parameter.get("Default")) else { continue };
            if let Some(default) = plain_scalar(default) {
                values.insert(name.to_owned(), default);
            }
        }
        for (name, value) in given {
            if !declared.is_some_and(|declared| declared.contains_key(name.as_str())) {
                bail!("the template has no parameter {name}");
            }
            values.insert(name.clone(), value.clone());
        }
        Ok(Self { values })
    }

    fn scalar(&self, value: &Value) -> Option<String> {
        if let Some(plain) = plain_scalar(value) {
            return Some(plain);
        }
        let (function, argument) = intrinsic(value)?;
        match function {
            "Ref" => self.values.get(argument.as_str()?).cloned(),
            "Sub" => match argument {
                Value::String(text) => self.substitute(text, &BTreeMap::new()),
                Value::Sequence(parts) => {
                    let text = parts.first()?.as_str()?;
                    let mut locals = BTreeMap::new();
                    for (name, value) in parts.get(1).and_then(Value::as_mapping).into_iter().flatten() {
                        locals.insert(name.as_str()?.to_owned(), self.scalar(value)?);
                    }
                    self.substitute(text, &locals)
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// `${Name}` substitution; `${!Literal}` writes `${Literal}`.
    fn substitute(&self, text: &str, locals: &BTreeMap<String, String>) -> Option<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}')?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                out.push_str(locals.get(name).or_else(|| self.values.get(name))?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }
}

fn plain_scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `!Name arg` (short form) or `{Name: arg}` / `{"Fn::Name": arg}` (long form).
fn intrinsic(value: &Value) -> Option<(&str, &Value)> {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let name = ["Ref", "Sub"].into_iter().find(|known| *known == name).unwrap_or("other");
            Some((name, &tagged.value))
        }
        Value::Mapping(map) if map.len() == 1 => {
            let (key, argument) = map.iter().next()?;
            match key.as_str()? {
                "Ref" => Some(("Ref", argument)),
                "Fn::Sub" => Some(("Sub", argument)),
                _ => Some(("other", argument)),
            }
        }
        _ => None,
    }
}

/// Environment overrides in the format of `sam local --env-vars`: `Parameters` applies to every
/// function, a key naming a function (logical id or function name) to that function only. Unlike
/// SAM, a variable the template does not declare is added rather than ignored, so a local file
/// can supply what production reads from elsewhere (the database URL, the signing key). `null`
/// removes a variable.
#[derive(Debug, Clone, Default)]
pub struct EnvOverrides {
    sections: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

impl EnvOverrides {
    /// Reads an env-vars JSON file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Parses env-vars JSON.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let root: BTreeMap<String, BTreeMap<String, Json>> =
            serde_json::from_str(text).context("expected {\"Parameters\"|FunctionId: {VAR: value}}")?;
        let mut sections = BTreeMap::new();
        for (section, variables) in root {
            let mut parsed = BTreeMap::new();
            for (name, value) in variables {
                let value = match value {
                    Json::Null => None,
                    Json::String(s) => Some(s),
                    Json::Number(n) => Some(n.to_string()),
                    Json::Bool(b) => Some(b.to_string()),
                    other => bail!("{section}.{name}: {other} is not a string, number or boolean"),
                };
                parsed.insert(name, value);
            }
            sections.insert(section, parsed);
        }
        Ok(Self { sections })
    }

    /// Sets one variable for every function (as `Parameters` would).
    pub fn set_for_all(&mut self, name: &str, value: impl Into<String>) {
        self.sections.entry("Parameters".to_owned()).or_default().insert(name.to_owned(), Some(value.into()));
    }

    /// Sets one variable for one function (logical id or function name), over `Parameters`.
    pub fn set_for(&mut self, function: &str, name: &str, value: impl Into<String>) {
        self.sections.entry(function.to_owned()).or_default().insert(name.to_owned(), Some(value.into()));
    }

    /// Removes one variable from every function (as `null` in `Parameters` would).
    pub fn remove_for_all(&mut self, name: &str) {
        self.sections.entry("Parameters".to_owned()).or_default().insert(name.to_owned(), None);
    }

    /// Applies the overrides to a function's environment: `Parameters` first, then the
    /// function's own section.
    pub fn apply(&self, function: &mut FunctionSpec) {
        let own = [Some(function.logical_id.as_str()), function.function_name.as_deref()];
        let sections = std::iter::once("Parameters").chain(own.into_iter().flatten());
        for section in sections {
            for (name, value) in self.sections.get(section).into_iter().flatten() {
                match value {
                    Some(value) => function.environment.insert(name.clone(), value.clone()),
                    None => function.environment.remove(name),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Issuer:
    Type: String
    Default: https://issuer.test
  Ttl:
    Type: Number
    Default: 900
  NoDefault:
    Type: String
  Prefix:
    Type: String
    Default: catch
Globals:
  Function:
    Timeout: 10
    MemorySize: 128
    LoggingConfig:
      LogFormat: JSON
    Environment:
      Variables:
        JWT_ISSUER: !Ref Issuer
        ACCESS_TOKEN_TTL_SECONDS: !Ref Ttl
        SHARED: global
        TABLE: !GetAtt Table.Arn
        MISSING: !Ref NoDefault
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  Table:
    Type: AWS::DynamoDB::Table
  GreetFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: target/lambda/greet/bootstrap.zip
      MemorySize: 256
      Environment:
        Variables:
          SHARED: own
          URL: !Sub "https://${Api}.execute-api.${AWS::Region}.amazonaws.com"
          REGION: !Sub "${AWS::Region}/${!Literal}"
      Events:
        Greet:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: post
            Path: /greet
        Warm:
          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)
  CatchAllFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: !Sub "target/lambda/${Prefix}-all/bootstrap.zip"
      Timeout: 3
      Events:
        Everything:
          Type: HttpApi
  Setup:
    Type: AWS::CloudFormation::CustomResource
    Properties:
      ServiceToken: !Ref CatchAllFunction.Alias
"#;

    fn parsed() -> Template {
        Template::parse(TEMPLATE, "eu-west-1").expect("the template parses")
    }

    fn function<'a>(template: &'a Template, id: &str) -> &'a FunctionSpec {
        template.functions.iter().find(|f| f.logical_id == id).expect("the function exists")
    }

    #[test]
    fn refs_resolve_to_parameter_defaults_and_unresolvable_values_are_dropped() {
        let template = parsed();
        let env = &function(&template, "GreetFunction").environment;
        assert_eq!(env["JWT_ISSUER"], "https://issuer.test");
        assert_eq!(env["ACCESS_TOKEN_TTL_SECONDS"], "900");
        assert_eq!(env["REGION"], "eu-west-1/${Literal}");
        assert!(!env.contains_key("TABLE"), "a resource attribute has no local value");
        assert!(!env.contains_key("MISSING"), "a parameter without a default has no value");
        assert!(!env.contains_key("URL"), "a Sub over a resource has no local value");
    }

    #[test]
    fn a_function_property_overrides_globals_and_variables_merge() {
        let template = parsed();
        let greet = function(&template, "GreetFunction");
        assert_eq!(greet.timeout, Duration::from_secs(10));
        assert_eq!(greet.memory_size_mb, 256);
        assert_eq!(greet.environment["SHARED"], "own");
        assert_eq!(greet.environment["AWS_LAMBDA_LOG_FORMAT"], "JSON");
        assert_eq!(greet.binary, "greet");
        assert_eq!(greet.handler, "bootstrap");
        let catch_all = function(&template, "CatchAllFunction");
        assert_eq!(catch_all.timeout, Duration::from_secs(3));
        assert_eq!(catch_all.memory_size_mb, 128);
        assert_eq!(catch_all.environment["SHARED"], "global");
    }

    #[test]
    fn only_http_api_events_become_routes() {
        let template = parsed();
        let greet = function(&template, "GreetFunction");
        assert_eq!(greet.routes, vec![RouteSpec::Route { method: "POST".into(), path: "/greet".into() }]);
        assert_eq!(greet.routes[0].key(), "POST /greet");
        assert_eq!(function(&template, "CatchAllFunction").routes, vec![RouteSpec::Default]);
    }

    #[test]
    fn the_binary_is_named_by_the_packaged_zips_folder() {
        let template = parsed();
        assert_eq!(function(&template, "GreetFunction").binary, "greet");
        assert_eq!(function(&template, "CatchAllFunction").binary, "catch-all", "a !Sub CodeUri resolves");
    }

    #[test]
    fn a_function_without_a_code_uri_is_an_error() {
        let text = "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {}\n";
        let error = Template::parse(text, "us-east-1").unwrap_err();
        assert!(format!("{error:#}").contains("no CodeUri"), "{error:#}");
    }

    #[test]
    fn a_code_uri_that_is_not_a_packaged_zip_is_an_error() {
        for code_uri in [".", "target/lambda/greet/", "s3://bucket/greet.zip", "bootstrap.zip"] {
            let text = format!(
                "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: {code_uri:?}\n"
            );
            let error = Template::parse(&text, "us-east-1").unwrap_err();
            assert!(
                format!("{error:#}").contains("target/lambda/<function>/bootstrap.zip"),
                "{code_uri}: {error:#}"
            );
        }
    }

    #[test]
    fn overrides_apply_parameters_to_all_then_the_functions_own_section() {
        let mut template = parsed();
        let overrides = EnvOverrides::parse(
            r#"{"Parameters": {"DATABASE_URL": "postgres://x", "SHARED": "everyone", "AWS_LAMBDA_LOG_FORMAT": null},
                "GreetFunction": {"SHARED": "greet only", "PORT": 5432}}"#,
        )
        .unwrap();
        for function in &mut template.functions {
            overrides.apply(function);
        }
        let greet = function(&template, "GreetFunction");
        assert_eq!(greet.environment["DATABASE_URL"], "postgres://x");
        assert_eq!(greet.environment["SHARED"], "greet only");
        assert_eq!(greet.environment["PORT"], "5432");
        assert!(!greet.environment.contains_key("AWS_LAMBDA_LOG_FORMAT"));
        assert_eq!(function(&template, "CatchAllFunction").environment["SHARED"], "everyone");
    }

    #[test]
    fn given_parameters_win_over_defaults_and_must_be_declared() {
        let given = BTreeMap::from([("Issuer".to_owned(), "https://given.test".to_owned())]);
        let template = Template::parse_with(TEMPLATE, "eu-west-1", &given).unwrap();
        assert_eq!(function(&template, "GreetFunction").environment["JWT_ISSUER"], "https://given.test");

        let unknown = BTreeMap::from([("Nope".to_owned(), "x".to_owned())]);
        let error = Template::parse_with(TEMPLATE, "eu-west-1", &unknown).unwrap_err();
        assert!(format!("{error:#}").contains("no parameter Nope"), "{error:#}");
    }

    const IAM_TEMPLATE: &str = r#"
Resources:
  AdminApi:
    Type: AWS::Serverless::HttpApi
    Properties:
      StageName: $default
      Auth:
        EnableIamAuthorizer: true
        DefaultAuthorizer: AWS_IAM
  OpenApi:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        EnableIamAuthorizer: true
  AdminFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: target/lambda/admin/bootstrap.zip
      Events:
        List:
          Type: HttpApi
          Properties:
            ApiId: !Ref AdminApi
            Path: /admin/users
            Method: GET
        Ping:
          Type: HttpApi
          Properties:
            ApiId: {Ref: AdminApi}
            Path: /admin/ping
            Method: GET
            Auth:
              Authorizer: NONE
        Everything:
          Type: HttpApi
          Properties:
            ApiId: !Ref AdminApi
  OpenFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: target/lambda/open/bootstrap.zip
      Events:
        Open:
          Type: HttpApi
          Properties:
            ApiId: !Ref OpenApi
            Path: /open
            Method: GET
        Signed:
          Type: HttpApi
          Properties:
            ApiId: !Ref OpenApi
            Path: /signed
            Method: POST
            Auth:
              Authorizer: AWS_IAM
        Implicit:
          Type: HttpApi
          Properties:
            Path: /implicit
            Method: GET
"#;

    fn iam_routes(template: &Template, id: &str) -> Vec<String> {
        function(template, id).iam_routes.iter().cloned().collect()
    }

    #[test]
    fn routes_need_iam_from_their_apis_default_unless_their_event_says_otherwise() {
        let template = Template::parse(IAM_TEMPLATE, "us-east-1").unwrap();

        assert_eq!(iam_routes(&template, "AdminFunction"), ["$default", "GET /admin/users"]);
        assert_eq!(iam_routes(&template, "OpenFunction"), ["POST /signed"]);
        let admin = function(&template, "AdminFunction");
        let ping = RouteSpec::Route { method: "GET".into(), path: "/admin/ping".into() };
        assert!(admin.routes.contains(&ping));
        assert!(!admin.requires_iam(&ping), "Authorizer: NONE opts out of the default");
        assert!(admin.requires_iam(&RouteSpec::Default));
    }

    #[test]
    fn the_implicit_api_takes_its_authorizer_from_the_globals() {
        let text = format!(
            "Globals:\n  HttpApi:\n    Auth:\n      EnableIamAuthorizer: true\n      DefaultAuthorizer: AWS_IAM\n{}",
            IAM_TEMPLATE
        );
        let template = Template::parse(&text, "us-east-1").unwrap();

        assert_eq!(iam_routes(&template, "OpenFunction"), ["GET /implicit", "GET /open", "POST /signed"]);
    }

    #[test]
    fn aws_iam_without_enable_iam_authorizer_or_an_unknown_api_id_is_an_error() {
        let without_enable =
            IAM_TEMPLATE.replace("        EnableIamAuthorizer: true\n        Default", "        Default");
        let unknown_api = IAM_TEMPLATE.replace(
            "ApiId: !Ref OpenApi\n            Path: /open",
            "ApiId: !Ref NoSuchApi\n            Path: /open",
        );
        let route_without_enable = IAM_TEMPLATE.replace(
            "  OpenApi:\n    Type: AWS::Serverless::HttpApi\n    Properties:\n      Auth:\n        EnableIamAuthorizer: true\n",
            "  OpenApi:\n    Type: AWS::Serverless::HttpApi\n",
        );
        for (text, expected) in [
            (without_enable, "DefaultAuthorizer AWS_IAM needs EnableIamAuthorizer"),
            (unknown_api, "ApiId NoSuchApi is not an AWS::Serverless::HttpApi"),
            (route_without_enable, "Authorizer AWS_IAM needs EnableIamAuthorizer"),
        ] {
            assert_ne!(text, IAM_TEMPLATE, "the test edits the template");
            let error = Template::parse(&text, "us-east-1").unwrap_err();
            assert!(format!("{error:#}").contains(expected), "{error:#}");
        }
    }

    #[test]
    fn schedules_and_custom_resources_say_who_invokes_a_function_directly() {
        let template = parsed();
        let greet = function(&template, "GreetFunction");
        assert_eq!(greet.schedules, vec!["rate(5 minutes)".to_owned()]);
        assert!(!greet.custom_resource);
        let catch_all = function(&template, "CatchAllFunction");
        assert!(catch_all.schedules.is_empty());
        assert!(catch_all.custom_resource, "the custom resource's ServiceToken names it");
    }
}
