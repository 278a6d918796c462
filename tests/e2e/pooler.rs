//! The whole API through PgBouncer in transaction mode (`pool_mode = transaction`, two server
//! connections), as behind RDS Proxy: several sandboxes of each function share the two server
//! connections, so statements of one client land on a server connection another client used
//! just before. Any named statement left behind, or a statement parsed on one server connection
//! and executed on another, fails a request. PgBouncer comes from Debian's `pgbouncer` package
//! (scripts/install-pgbouncer, which `make test` runs).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::helpers::{TestApi, TestDb, TestResponse, email, eventually, server_lock, server_url};
use local_lambda::Log;
use sqlx::postgres::PgConnectOptions;

/// Users going through the contract at once.
const USERS: usize = 6;

/// A PgBouncer of the test's own in front of the test server, in transaction mode.
struct PgBouncer {
    port: u16,
    // Killed before its folder is removed (fields drop in order).
    _process: tokio::process::Child,
    _dir: TempDir,
}

impl PgBouncer {
    async fn start() -> Self {
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
            .expect("pgbouncer is not installed: run scripts/install-pgbouncer (make test does)");
        let server: PgConnectOptions = server_url().parse().expect("DATABASE_URL parses");
        let port = free_port();
        let dir = TempDir::new();
        // Every database name maps to the test server, logged in as its trusted superuser.
        let config = format!(
            "[databases]\n\
             * = host={host} port={server_port} user=postgres\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = any\n\
             pool_mode = transaction\n\
             default_pool_size = 2\n\
             max_client_conn = 200\n\
             server_reset_query =\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\n",
            host = server.get_host(),
            server_port = server.get_port(),
            dir = dir.0.display(),
        );
        let config_path = dir.0.join("pgbouncer.ini");
        std::fs::write(&config_path, config).expect("writing pgbouncer.ini");
        // PgBouncer refuses to run as root: as root (CI) it runs as the server's user. It is
        // our child itself (not under runuser), so that dropping it kills it.
        let mut command = tokio::process::Command::new(&binary);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let (uid, gid) = postgres_user();
            command.uid(uid).gid(gid);
        }
        let mut process = command
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting pgbouncer");
        eventually("pgbouncer to listen", Duration::from_secs(10), || {
            assert!(process.try_wait().expect("pgbouncer's status").is_none(), "pgbouncer exited");
            async move { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ()) }
        })
        .await;
        Self { port, _process: process, _dir: dir }
    }

    /// The URL of `database` through this PgBouncer.
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// A folder the server's user can enter (pgbouncer reads its configuration and writes its log
/// there), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let path = Path::new("/tmp").join(format!("pgbouncer-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&path).expect("a folder for pgbouncer");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// The user and group ids of `postgres`, the server's user.
fn postgres_user() -> (u32, u32) {
    // SAFETY: getpwnam with a NUL-terminated name; the entry is read at once, before any other
    // call could overwrite it (tests of this binary run no other getpw* call).
    let entry = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    assert!(!entry.is_null(), "no `postgres` user to run pgbouncer as (PgBouncer refuses root)");
    // SAFETY: checked non-null above.
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port()
}

/// Every endpoint, as one user goes through them: each response's status, labelled.
async fn contract(api: &TestApi) -> Vec<(&'static str, TestResponse)> {
    let user = email();
    let signup = api.post_signup(&user).await;
    let taken = api.post_signup(&user).await;
    let login = api.post_login(&user).await;
    let wrong = api
        .post_json("/auth/login", &serde_json::json!({ "email": user, "password": "not the password" }))
        .await;
    let me = api.get_me(token(&login, "access_token")).await;
    let refresh = api.post_refresh(token(&login, "refresh_token")).await;
    let grace = api.post_refresh(token(&login, "refresh_token")).await;
    let next = api.post_refresh(token(&refresh, "refresh_token")).await;
    let logout = api.post_logout(token(&next, "refresh_token")).await;
    let after_logout = api.post_refresh(token(&next, "refresh_token")).await;
    let health = api.get("/health").await;
    vec![
        ("signup", signup),
        ("signup again (a unique violation, rolled back)", taken),
        ("login", login),
        ("wrong password", wrong),
        ("me", me),
        ("refresh", refresh),
        ("refresh again within the grace window", grace),
        ("refresh the successor", next),
        ("logout", logout),
        ("refresh after logout", after_logout),
        ("health", health),
    ]
}

/// A token of a response, or a malformed one when it failed (the run goes on, and is judged by
/// every status at the end).
fn token<'r>(response: &'r TestResponse, name: &str) -> &'r str {
    response.body[name].as_str().unwrap_or("not-a-token")
}

const EXPECTED: [u16; 11] = [201, 409, 200, 401, 200, 200, 200, 200, 204, 401, 200];

/// The API behind PgBouncer, `USERS` users at once, up to three sandboxes per function.
async fn through_pgbouncer(pooler: bool, log: Option<Log>) -> Vec<Vec<(&'static str, TestResponse)>> {
    let lock = server_lock(false);
    let bouncer = PgBouncer::start().await;
    let db = TestDb::create().await;
    let url = bouncer.url(&db.name);
    let api = TestApi::start_on(db, lock, |config| {
        config.max_sandboxes_per_function = 3;
        config.env_overrides.set_for_all("DATABASE_URL", url.clone());
        if pooler {
            config.env_overrides.set_for_all("DB_TRANSACTION_POOLER", "true");
        }
        if let Some(log) = log {
            config.log = log;
        }
    })
    .await;
    let runs = futures_util::future::join_all((0..USERS).map(|_| contract(&api))).await;
    let sandboxes = api.emulator.sandboxes("LoginFunction").expect("a function").len();
    assert!(sandboxes > 1, "several clients share PgBouncer's two server connections: {sandboxes} sandbox");
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_api_works_through_a_transaction_pooler_with_db_transaction_pooler_set() {
    let runs = through_pgbouncer(true, None).await;

    for run in &runs {
        let statuses: Vec<u16> = run.iter().map(|(_, response)| response.status).collect();
        let answers: Vec<String> = run
            .iter()
            .map(|(step, response)| format!("{step}: {} {}", response.status, response.text))
            .collect();
        assert_eq!(statuses, EXPECTED, "\n{}", answers.join("\n"));
    }
}

/// The same run without the setting: sqlx names each statement `sqlx_s_N`, counted per client
/// connection, and keeps it prepared, so the next client of that server connection collides
/// with it. This is what the test above would see if the setting did nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_db_transaction_pooler_the_functions_statements_collide_through_the_pooler() {
    let log = Log::captured();
    let runs = through_pgbouncer(false, Some(log.clone())).await;

    let failed = runs.iter().flatten().filter(|(_, response)| response.status == 500).count();
    assert!(failed > 0, "every request succeeded through a transaction pooler without the setting");
    let lines = log.lines();
    assert!(
        lines
            .iter()
            .any(|line| line.contains("prepared statement \"sqlx_s_") && line.contains("already exists")),
        "{}",
        lines.join("\n")
    );
}
