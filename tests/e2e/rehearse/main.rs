//! `rehearse`: the production rehearsal's driver (`make rehearse` runs it through
//! `scripts/rehearse`). Against an empty database whose credentials, like the signing keys, are in
//! a (local) Secrets Manager, it invokes the migration function as CloudFormation does at a deploy,
//! runs a contract smoke through the emulated HTTP API, then the shutdown phase. One line per step;
//! it stops with a non-zero exit at the first step that does not hold.
//!
//! Step lines go to standard error; the functions' own output (and the emulator's) to standard
//! output, which `scripts/rehearse` keeps in a file.

mod api;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use http::Method;
use local_lambda::report::millis;
use local_lambda::{Emulator, EmulatorConfig, EnvOverrides, FunctionSpec, InvocationReport, Log, Template};
use serde_json::{Value, json};
use sqlx::Connection as _;
use sqlx::postgres::PgConnectOptions;

use secrecy::SecretString;
use shared::mfa::seal::SealingKeys;
use shared::mfa::totp::{self, TotpSecret};
use shared::tokens::{SigningAlgorithm, SigningKey, TokenSigner};
use test_support::samples::Fixture;

use crate::api::{Api, WatchedMetric, text, token_claims, token_header};

const USAGE: &str = "\
usage: rehearse --bin-dir DIR --env-vars FILE --database-url URL --database NAME
                --signing-key PEM --kid KID --mfa-keys FILE [--parameter NAME=VALUE]...
                [--template FILE]
                [--events DIR] [--wrapper COMMAND]

Runs, against the empty database NAME on the server of URL (an administrator's URL), the
template's functions with the given template parameters (as a deploy passes them): the function
the stack's custom resource invokes (the migration) with its sample event in EVENTS, as CloudFormation
does at a deploy; then signup, login, me, refresh, logout, refresh after logout, health, the
JWKS and OpenID configuration, every scheduled function's event, and the account lifecycle
(sessions, dead links, resend, forgot with the mail SES accepted, password change, a session
revoked, the account deleted) through the emulated HTTP API; then every function's sample event
(EVENTS/<binary>.json, filled with a fresh account whose access token is signed with the key in
PEM, as KID); then the shutdown phase, and checks that no connection to NAME is left.";

/// Variables whose presence in the environment would mean a secret travels outside Secrets
/// Manager: a deployed function has none of them.
const SECRET_VARIABLES: [&str; 6] = [
    "DATABASE_URL",
    "DB_PASSWORD",
    "JWT_PRIVATE_KEY",
    "REFRESH_TOKEN_HMAC_KEY",
    "JWT_PUBLIC_KEYS",
    "MFA_KEYS",
];

const PASSWORD: &str = "rehearsal: correct horse battery staple";
const NEW_PASSWORD: &str = "rehearsal: violet tractor umbrella sunrise";
/// A link token of the right shape that no mail ever carried.
const DEAD_LINK_TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("rehearse: {error:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match rehearse(&options).await {
        Ok(()) => ExitCode::SUCCESS,
        // The failing step has printed its line.
        Err(_) => ExitCode::FAILURE,
    }
}

struct Options {
    template: PathBuf,
    signing_key: PathBuf,
    kid: String,
    /// The MFA key ring's JSON (the secret's value), which the fixture seals factors with.
    mfa_keys: PathBuf,
    parameters: BTreeMap<String, String>,
    bin_dir: PathBuf,
    env_vars: PathBuf,
    events: PathBuf,
    wrapper: Vec<String>,
    database_url: String,
    database: String,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut template = PathBuf::from("template.yaml");
        let mut events = PathBuf::from("events");
        let (mut bin_dir, mut env_vars, mut database_url, mut database) = (None, None, None, None);
        let (mut signing_key, mut kid, mut mfa_keys) = (None, None, None);
        let mut wrapper = Vec::new();
        let mut parameters = BTreeMap::new();
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().with_context(|| format!("{flag} needs a value"))?.clone();
            match flag.as_str() {
                "--template" => template = value.into(),
                "--signing-key" => signing_key = Some(PathBuf::from(value)),
                "--kid" => kid = Some(value),
                "--mfa-keys" => mfa_keys = Some(PathBuf::from(value)),
                "--parameter" => {
                    let (name, value) = value.split_once('=').context("--parameter takes NAME=VALUE")?;
                    parameters.insert(name.to_owned(), value.to_owned());
                }
                "--bin-dir" => bin_dir = Some(PathBuf::from(value)),
                "--env-vars" => env_vars = Some(PathBuf::from(value)),
                "--events" => events = value.into(),
                "--wrapper" => wrapper = value.split_whitespace().map(str::to_owned).collect(),
                "--database-url" => database_url = Some(value),
                "--database" => database = Some(value),
                other => bail!("unknown option {other}"),
            }
        }
        Ok(Self {
            template,
            signing_key: signing_key.context("--signing-key is required")?,
            kid: kid.context("--kid is required")?,
            mfa_keys: mfa_keys.context("--mfa-keys is required")?,
            parameters,
            bin_dir: bin_dir.context("--bin-dir is required")?,
            env_vars: env_vars.context("--env-vars is required")?,
            events,
            wrapper,
            database_url: database_url.context("--database-url is required")?,
            database: database.context("--database is required")?,
        })
    }
}

/// Runs one step: prints `rehearse: NAME ... ok (N ms[, DETAIL])`, or `... FAILED` with the
/// reason, and passes the error on.
async fn step<T>(name: &str, work: impl Future<Output = anyhow::Result<(T, String)>>) -> anyhow::Result<T> {
    let started = Instant::now();
    let result = work.await;
    let elapsed = started.elapsed().as_millis();
    match result {
        Ok((value, detail)) => {
            let detail = if detail.is_empty() { String::new() } else { format!("; {detail}") };
            eprintln!("rehearse: {name} ... ok ({elapsed} ms{detail})");
            Ok(value)
        }
        Err(error) => {
            eprintln!("rehearse: {name} ... FAILED ({elapsed} ms): {error:#}");
            Err(error)
        }
    }
}

async fn rehearse(options: &Options) -> anyhow::Result<()> {
    let overrides = step("configuration holds no secret", check_configuration(&options.env_vars)).await?;
    let mut config = EmulatorConfig::new(&options.template, &options.bin_dir);
    config.parameters = options.parameters.clone();
    config.env_overrides = overrides;
    config.wrapper = options.wrapper.clone();
    // Unthrottled: under qemu-user a sandbox needs many times the CPU and memory of the arm64
    // function it emulates, so Lambda's share of either would measure qemu, not the function.
    config.sandbox_limits = false;
    config.port = 0;
    config.log = Log::captured();
    let template = Template::load_with(&config.template, &config.region, &config.parameters)?;
    let emulator = Emulator::start(config).await.context("starting the emulator")?;
    let api = Api::new(&emulator);
    let result = rehearse_on(options, &template, &api).await;
    if result.is_err() {
        // The functions' lines are on stdout already; the failing step said why. Every sandbox
        // still goes through the shutdown phase, so that nothing is left running.
        emulator.shutdown_all().await;
        return result;
    }
    step("shutdown phase", shut_down(&emulator)).await?;
    step("no database connection left", no_backend_left(options)).await?;
    summary(&emulator.invocations(), !options.wrapper.is_empty());
    Ok(())
}

/// The deploy's migration, then the API, on the warm sandboxes they leave.
async fn rehearse_on(options: &Options, template: &Template, api: &Api<'_>) -> anyhow::Result<()> {
    let migration_function =
        template.functions.iter().find(|f| f.custom_resource).context("no custom resource")?;
    let event = options.events.join(format!("{}.json", migration_function.binary));
    let (migrations, role) = step(
        "the migration (the custom resource's function, with its sample event)",
        migration(api, migration_function, &event),
    )
    .await?;
    step("schema is up to date", schema_is_current(options, migrations)).await?;
    step("the application role has DML only", application_role_has_dml_only(options, &role)).await?;
    let claims = smoke(api).await?;
    let fixture = step("a fixture for the sample events", fixture(options, &claims)).await?;
    for function in &template.functions {
        let event = options.events.join(format!("{}.json", function.binary));
        step(&format!("{}'s sample event", function.logical_id), api.sample(&fixture, function, &event))
            .await?;
    }
    let watched = WatchedMetric::of(&options.template)?;
    for function in template.functions.iter().filter(|f| !f.schedules.is_empty()) {
        let metrics: Vec<WatchedMetric> = watched
            .iter()
            .filter(|(watched_function, _)| *watched_function == function.logical_id)
            .map(|(_, metric)| metric.clone())
            .collect();
        step(
            &format!("{} on its schedule", function.logical_id),
            api.scheduled(&function.logical_id, &metrics),
        )
        .await?;
    }
    step("database connections use TLS", connections_use_tls(options)).await
}

/// The env-vars file configures the functions as deployed: secrets are ARNs, never values.
async fn check_configuration(path: &Path) -> anyhow::Result<(EnvOverrides, String)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let root: serde_json::Map<String, Value> = serde_json::from_str(&text).context("parsing the env-vars")?;
    for (section, variables) in &root {
        for name in variables.as_object().into_iter().flat_map(|v| v.keys()) {
            ensure!(
                !SECRET_VARIABLES.contains(&name.as_str()),
                "{section}.{name} is set: deployed functions read their secrets from Secrets Manager"
            );
        }
    }
    let overrides = EnvOverrides::parse(&text)?;
    Ok((overrides, format!("{} sections in {}", root.len(), path.display())))
}

/// The deploy's migration: CloudFormation invokes the custom resource's function at each deploy
/// (its sample event in `events/` is an operator's direct invocation of it, answered the same).
async fn migration(
    api: &Api<'_>,
    function: &FunctionSpec,
    event: &Path,
) -> anyhow::Result<((u64, String), String)> {
    let event = std::fs::read(event).with_context(|| format!("reading {}", event.display()))?;
    let (answer, detail) = api.invoke(&function.logical_id, event).await?;
    let migrations =
        answer["migrations"].as_u64().with_context(|| format!("no migration count in {answer}"))?;
    ensure!(migrations > 0, "the migration function knows no migration: {answer}");
    let role = answer["application_role"]
        .as_str()
        .with_context(|| format!("no application role was granted its privileges: {answer}"))?
        .to_owned();
    Ok((
        (migrations, role.clone()),
        format!("{migrations} migrations, privileges granted to {role}; {detail}"),
    ))
}

/// The role the API runs as reads and writes the tables (only inserts and reads the security
/// events, which are append-only), and can neither create nor alter one.
async fn application_role_has_dml_only(options: &Options, role: &str) -> anyhow::Result<((), String)> {
    let server: PgConnectOptions = options.database_url.parse().context("--database-url")?;
    let mut db = sqlx::PgConnection::connect_with(&server.database(&options.database))
        .await
        .context("connecting to the rehearsal database")?;
    let (dml, create, owns): (bool, bool, bool) = sqlx::query_as(
        "select bool_and(has_table_privilege($1, c.oid, 'select')
                         and has_table_privilege($1, c.oid, 'insert') = (c.relname <> 'security_event_outbox')
                         and has_table_privilege($1, c.oid, 'update')
                             = (c.relname not in ('security_events', 'security_event_outbox'))
                         and has_table_privilege($1, c.oid, 'delete') = (c.relname <> 'security_events')),
                has_schema_privilege($1, current_schema(), 'create'),
                bool_or(pg_get_userbyid(c.relowner) = $1)
         from pg_class c
         where c.relnamespace = current_schema()::text::regnamespace and c.relkind = 'r'
           and c.relname <> '_sqlx_migrations'",
    )
    .bind(role)
    .fetch_one(&mut db)
    .await
    .context("reading the application role's privileges")?;
    db.close().await?;
    ensure!(
        dml,
        "{role} lacks select, insert, update or delete on a table, may change a security event, or may queue one by hand"
    );
    ensure!(!create && !owns, "{role} may create tables in the schema or owns one");
    Ok(((), format!("{role}: DML on every table (security events append-only), no create, owns nothing")))
}

async fn admin_connection(options: &Options) -> anyhow::Result<sqlx::PgConnection> {
    sqlx::PgConnection::connect(&options.database_url).await.context("connecting as the administrator")
}

/// Every migration the function knows is recorded as applied in the rehearsal's database.
async fn schema_is_current(options: &Options, migrations: u64) -> anyhow::Result<((), String)> {
    let server: PgConnectOptions = options.database_url.parse().context("--database-url")?;
    let mut db = sqlx::PgConnection::connect_with(&server.database(&options.database))
        .await
        .context("connecting to the rehearsal database")?;
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(&mut db)
        .await
        .context("reading _sqlx_migrations")?;
    let tables: i64 =
        sqlx::query_scalar("select count(*) from information_schema.tables where table_schema = 'public'")
            .fetch_one(&mut db)
            .await?;
    db.close().await?;
    ensure!(
        u64::try_from(applied) == Ok(migrations),
        "{applied} migrations recorded as applied, the function reported {migrations}"
    );
    Ok(((), format!("{applied} applied, {tables} tables")))
}

/// The contract smoke, through the emulated HTTP API.
async fn smoke(api: &Api<'_>) -> anyhow::Result<Value> {
    let email = format!("rehearsal-{}@example.com", uuid::Uuid::new_v4().simple());
    let credentials = json!({ "email": email, "password": PASSWORD });

    let signup_token = step("POST /auth/signup", async {
        let (signup, detail) = api.expect(api.post("/auth/signup", &credentials), 201).await?;
        Ok((text(&signup, "access_token")?, detail))
    })
    .await?;

    let login = step("POST /auth/login", api.expect(api.post("/auth/login", &credentials), 200)).await?;
    let access_token = text(&login, "access_token")?;
    let refresh_token = text(&login, "refresh_token")?;

    step("GET /auth/me", async {
        let (me, detail) = api.expect(api.get("/auth/me", Some(&access_token)), 200).await?;
        ensure!(me["email"] == email.as_str(), "me answered another user: {me}");
        Ok(((), detail))
    })
    .await?;

    let (rotated, access_token) = step("POST /auth/refresh", async {
        let body = json!({ "refresh_token": refresh_token });
        let (refreshed, detail) = api.expect(api.post("/auth/refresh", &body), 200).await?;
        let rotated = text(&refreshed, "refresh_token")?;
        ensure!(rotated != refresh_token, "the refresh token was not rotated");
        Ok(((rotated, text(&refreshed, "access_token")?), detail))
    })
    .await?;

    step(
        "POST /auth/logout",
        api.expect(api.post("/auth/logout", &json!({ "refresh_token": rotated })), 204),
    )
    .await?;
    step(
        "POST /auth/refresh after logout is refused",
        api.expect(api.post("/auth/refresh", &json!({ "refresh_token": rotated })), 401),
    )
    .await?;

    step("GET /health", async {
        let (health, detail) = api.expect(api.get("/health", None), 200).await?;
        ensure!(health["status"] == "healthy" && health["database"] == "connected", "{health}");
        Ok(((), detail))
    })
    .await?;

    let kid = token_header(&access_token)?["kid"].as_str().context("the access token has no kid")?.to_owned();
    let issuer =
        token_claims(&access_token)?["iss"].as_str().context("the access token has no iss")?.to_owned();
    step("GET /.well-known/jwks.json", async {
        let (jwks, detail) = api.expect(api.get("/.well-known/jwks.json", None), 200).await?;
        let keys = jwks["keys"].as_array().context("no keys array")?;
        ensure!(
            keys.iter().any(|k| k["kid"] == kid.as_str()),
            "the signing key {kid} is not published: {jwks}"
        );
        let private = ["d", "p", "q", "dp", "dq", "qi"];
        ensure!(
            keys.iter().all(|k| private.iter().all(|member| k.get(member).is_none())),
            "a published key has a private member"
        );
        Ok(((), format!("{} keys, {kid} among them; {detail}", keys.len())))
    })
    .await?;
    step("GET /.well-known/openid-configuration", async {
        let (openid, detail) = api.expect(api.get("/.well-known/openid-configuration", None), 200).await?;
        ensure!(
            openid["issuer"] == issuer.as_str(),
            "issuer {} is not the tokens' {issuer}",
            openid["issuer"]
        );
        let jwks_uri = format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'));
        ensure!(openid["jwks_uri"] == jwks_uri.as_str(), "jwks_uri {} is not {jwks_uri}", openid["jwks_uri"]);
        Ok(((), detail))
    })
    .await?;

    lifecycle(api, &email, &signup_token).await?;
    second_factor(api).await?;
    token_claims(&signup_token)
}

/// The TOTP flow on the same artifacts: an authenticator app enrolled and confirmed (the secret
/// sealed with the ring from Secrets Manager in one function, opened in another), a login that
/// asks for it, and its code finishing the sign-in at aal2.
async fn second_factor(api: &Api<'_>) -> anyhow::Result<()> {
    let email = format!("rehearsal-mfa-{}@example.com", uuid::Uuid::new_v4().simple());
    let credentials = json!({ "email": email, "password": PASSWORD });
    let (signup, _) = api.expect(api.post("/auth/signup", &credentials), 201).await?;
    let access = text(&signup, "access_token")?;
    let (secret, factor) = step("POST /auth/mfa/totp/enroll", async {
        let (enrolment, detail) =
            api.expect(api.request(Method::POST, "/auth/mfa/totp/enroll", Some(&access), None), 200).await?;
        let secret = TotpSecret::from_base32(&text(&enrolment, "secret")?).context("a base32 secret")?;
        Ok(((secret, text(&enrolment, "factor_id")?), detail))
    })
    .await?;
    let step_now = totp::step_of(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs());
    step("POST /auth/mfa/totp/confirm", async {
        let body = json!({ "factor_id": factor, "code": secret.code_at(step_now) });
        let (confirmed, detail) = api
            .expect(api.request(Method::POST, "/auth/mfa/totp/confirm", Some(&access), Some(&body)), 200)
            .await?;
        let codes = confirmed["recovery_codes"].as_array().map_or(0, Vec::len);
        ensure!(codes == 10, "{codes} recovery codes");
        Ok(((), detail))
    })
    .await?;
    let mfa_token = step("POST /auth/login asks for the second factor", async {
        let (login, detail) = api.expect(api.post("/auth/login", &credentials), 200).await?;
        ensure!(login["mfa_required"] == true && login.get("access_token").is_none(), "{login}");
        Ok((text(&login, "mfa_token")?, detail))
    })
    .await?;
    step("POST /auth/mfa/verify signs in at aal2", async {
        let body = json!({ "mfa_token": mfa_token, "code": secret.code_at(step_now + 1) });
        let (tokens, detail) = api.expect(api.post("/auth/mfa/verify", &body), 200).await?;
        let claims = token_claims(&text(&tokens, "access_token")?)?;
        ensure!(claims["aal"] == "aal2" && claims["amr"] == json!(["pwd", "otp"]), "claims {claims}");
        Ok(((), detail))
    })
    .await
}

/// What fills the sample events: accounts made in the rehearsal's database, access tokens signed
/// with the deployment's key for the issuer and audience the functions sign for (`claims`, of a
/// token they signed).
async fn fixture(options: &Options, claims: &Value) -> anyhow::Result<(Fixture, String)> {
    let server: PgConnectOptions = options.database_url.parse().context("--database-url")?;
    let pool = sqlx::PgPool::connect_with(server.database(&options.database)).await?;
    let pem = std::fs::read_to_string(&options.signing_key)
        .with_context(|| format!("reading {}", options.signing_key.display()))?;
    let key = SigningKey::from_pem(&options.kid, SigningAlgorithm::Rs256, &SecretString::from(pem))?;
    let issuer = claims["iss"].as_str().context("no iss")?.to_owned();
    let audience = claims["aud"].as_str().context("no aud")?.to_owned();
    // Refresh tokens the fixture makes are random, as the functions' are: the HMAC key only
    // derives successors, which the fixture never does.
    let refresh_key = SecretString::from(uuid::Uuid::new_v4().simple().to_string().repeat(2));
    let signer =
        TokenSigner::new(key, &refresh_key, issuer.as_str().into(), audience, Duration::from_secs(900))?;
    let ring = std::fs::read_to_string(&options.mfa_keys)
        .with_context(|| format!("reading {}", options.mfa_keys.display()))?;
    let mut fixture = Fixture::new(pool, signer).await?.with_mfa_keys(SealingKeys::from_json(&ring)?);
    // The passkeys it registers are for the functions' relying party, the deploy's AppUrl.
    if let Some(app_url) = options.parameters.get("AppUrl") {
        fixture = fixture.with_app_url(app_url)?;
    }
    Ok((fixture, format!("issuer {issuer}")))
}

/// The account lifecycle on the same artifacts, as far as a client without the mailbox goes,
/// and the mail the sending functions handed to SES. `access_token` is signup's, whose session
/// is the one still live.
async fn lifecycle(api: &Api<'_>, email: &str, access_token: &str) -> anyhow::Result<()> {
    let bearer = |method: Method, path: &'static str, body: Option<Value>| async move {
        api.request(method, path, Some(access_token), body.as_ref()).await
    };
    step("GET /auth/sessions", async {
        let (listed, detail) = api.expect(bearer(Method::GET, "/auth/sessions", None), 200).await?;
        let sessions = listed["sessions"].as_array().context("no sessions array")?;
        ensure!(
            sessions.iter().any(|s| s["current"] == true),
            "the caller's session is not listed: {listed}"
        );
        Ok(((), detail))
    })
    .await?;
    let dead = json!({ "token": DEAD_LINK_TOKEN });
    step(
        "POST /auth/verify-email refuses a dead link",
        api.expect(api.post("/auth/verify-email", &dead), 400),
    )
    .await?;
    step(
        "POST /auth/verify-email/resend",
        api.expect(bearer(Method::POST, "/auth/verify-email/resend", None), 202),
    )
    .await?;
    step(
        "POST /auth/password/forgot",
        api.expect(api.post("/auth/password/forgot", &json!({ "email": email })), 202),
    )
    .await?;
    step("SES accepted signup's verification mail and the reset mail", async {
        let accepted = api.mail_accepted_for(email).await?;
        ensure!(accepted == 2, "the local SES accepted {accepted} mails for {email}, not 2");
        Ok(((), format!("{accepted} mails")))
    })
    .await?;
    let reset = json!({ "token": DEAD_LINK_TOKEN, "password": NEW_PASSWORD });
    step(
        "POST /auth/password/reset refuses a dead link",
        api.expect(api.post("/auth/password/reset", &reset), 400),
    )
    .await?;
    let change = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
    step(
        "POST /auth/password/change",
        api.expect(bearer(Method::POST, "/auth/password/change", Some(change)), 204),
    )
    .await?;
    let credentials = json!({ "email": email, "password": NEW_PASSWORD });
    step("POST /auth/login with the new password", api.expect(api.post("/auth/login", &credentials), 200))
        .await?;
    step("DELETE /auth/sessions/{id}", async {
        let (listed, _) = api.expect(bearer(Method::GET, "/auth/sessions", None), 200).await?;
        let other = listed["sessions"]
            .as_array()
            .and_then(|sessions| sessions.iter().find(|s| s["current"] == false))
            .and_then(|session| session["id"].as_str())
            .context("the new login's session is not listed")?
            .to_owned();
        let path = format!("/auth/sessions/{other}");
        api.expect(api.request(Method::DELETE, &path, Some(access_token), None), 204)
            .await
            .map(|(_, detail)| ((), detail))
    })
    .await?;
    let password = json!({ "password": NEW_PASSWORD });
    step("DELETE /auth/me", api.expect(bearer(Method::DELETE, "/auth/me", Some(password)), 204)).await?;
    step("the deleted account's token is refused", api.expect(api.get("/auth/me", Some(access_token)), 401))
        .await?;
    Ok(())
}

/// The warm sandboxes keep their connections: each of them is encrypted, as `DB_SSLMODE`'s
/// deployed default demands.
async fn connections_use_tls(options: &Options) -> anyhow::Result<((), String)> {
    let mut admin = admin_connection(options).await?;
    let connections: Vec<(Option<String>, bool, Option<String>)> = sqlx::query_as(
        "select a.application_name, s.ssl, s.version from pg_stat_activity a join pg_stat_ssl s using (pid)
         where a.datname = $1 and a.pid <> pg_backend_pid()",
    )
    .bind(&options.database)
    .fetch_all(&mut admin)
    .await?;
    admin.close().await?;
    ensure!(!connections.is_empty(), "no warm sandbox holds a connection to {}", options.database);
    let plain: Vec<&str> =
        connections.iter().filter(|(_, ssl, _)| !ssl).filter_map(|(name, _, _)| name.as_deref()).collect();
    ensure!(plain.is_empty(), "connections without TLS: {plain:?}");
    let mut versions: Vec<&str> =
        connections.iter().filter_map(|(_, _, version)| version.as_deref()).collect();
    versions.dedup();
    Ok(((), format!("{} connections, {}", connections.len(), versions.join(", "))))
}

/// The shutdown phase of every sandbox: each runtime gets SIGTERM and exits by itself.
async fn shut_down(emulator: &Emulator) -> anyhow::Result<((), String)> {
    let reports = emulator.shutdown_all().await;
    let killed: Vec<String> = reports.iter().filter(|r| !r.exited_by_itself()).map(|r| r.summary()).collect();
    ensure!(!reports.is_empty(), "no sandbox was running");
    ensure!(
        killed.is_empty(),
        "{} of {} sandboxes had to be killed: {killed:?}",
        killed.len(),
        reports.len()
    );
    let not_zero: Vec<String> =
        reports.iter().filter(|r| r.exit_code != Some(0)).map(|r| r.summary()).collect();
    ensure!(not_zero.is_empty(), "sandboxes exited with an error: {not_zero:?}");
    let slowest = reports
        .iter()
        .filter_map(|r| match r.outcome {
            local_lambda::ShutdownOutcome::ExitedByItself { after } => Some(after),
            _ => None,
        })
        .max()
        .unwrap_or_default();
    Ok((
        (),
        format!(
            "{} sandboxes exited by themselves on SIGTERM, slowest after {:.0} ms",
            reports.len(),
            millis(slowest)
        ),
    ))
}

/// After the shutdown phase no backend serves the rehearsal's database: every function closed
/// its connection. A backend notices a closed socket a moment after the client exits, so this
/// waits (up to 5 s) for the count to reach zero.
async fn no_backend_left(options: &Options) -> anyhow::Result<((), String)> {
    let mut admin = admin_connection(options).await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<(i32, Option<String>)> = sqlx::query_as(
            "select pid, application_name from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
        )
        .bind(&options.database)
        .fetch_all(&mut admin)
        .await?;
        if left.is_empty() {
            admin.close().await?;
            return Ok(((), String::new()));
        }
        if Instant::now() >= deadline {
            bail!("backends still connected to {}: {left:?}", options.database);
        }
        // pg_stat_activity has nothing to wait on: poll it.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Cold starts and peak memory per function, as `REPORT` lines would show them.
fn summary(invocations: &[InvocationReport], wrapped: bool) {
    let mut functions: Vec<&str> = invocations.iter().map(|i| i.function.as_str()).collect();
    functions.sort_unstable();
    functions.dedup();
    // The emulator measures the process it spawned: under a wrapper such as qemu-user, the
    // emulator's own memory is counted with the function's.
    let whose = if wrapped { " (the wrapper's process: qemu and the function together)" } else { "" };
    for function in functions {
        let mine: Vec<&InvocationReport> = invocations.iter().filter(|i| i.function == function).collect();
        let inits: Vec<String> =
            mine.iter().filter_map(|i| i.init_duration).map(|d| format!("{:.0} ms", millis(d))).collect();
        let peak = mine.iter().filter_map(|i| i.max_memory_used_mb).max();
        eprintln!(
            "rehearse: {function:<16} invocations {}, cold start init {}, peak RSS {} MB{whose}",
            mine.len(),
            inits.join(", "),
            peak.map_or_else(|| "?".to_owned(), |mb| mb.to_string())
        );
    }
}
