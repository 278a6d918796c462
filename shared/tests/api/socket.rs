//! The database socket's options. sqlx 0.9.0 stopped setting `TCP_NODELAY`, and every TLS
//! connection then waited twice on the server's delayed ACK (about 88 ms a connection: the
//! cold start of every function that connects). `vendor/sqlx-core` restores it; this test
//! fails if the patch is lost, say when the `[patch.crates-io]` entry goes before a sqlx
//! release carries the fix.
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{BorrowedFd, RawFd};

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection as _, PgConnection};

/// This process's TCP sockets from local port `port` to `peer`, as std streams on duplicated
/// descriptors (the other tests of this binary hold connections to the same server).
fn sockets_connected_to(peer: SocketAddr, port: u16) -> Vec<TcpStream> {
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let path = entry.expect("a descriptor").path();
        let is_socket =
            std::fs::read_link(&path).is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = path.file_name().and_then(|name| name.to_str()?.parse::<RawFd>().ok()) else {
            continue;
        };
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor was listed as open just now, and the connection that owns it
        // is held by the caller for the whole call; it is only duplicated here.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(owned) = borrowed.try_clone_to_owned() else { continue };
        let stream = TcpStream::from(owned);
        if stream.peer_addr().is_ok_and(|address| address == peer)
            && stream.local_addr().is_ok_and(|address| address.port() == port)
        {
            sockets.push(stream);
        }
    }
    sockets
}

#[tokio::test]
async fn the_database_socket_has_nagle_off() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (make test runs scripts/with-postgres)");
    let root = std::env::var("PG_SSL_ROOT_CERT").expect("PG_SSL_ROOT_CERT (scripts/with-postgres)");
    let options: PgConnectOptions = url.parse().expect("DATABASE_URL parses");
    let options = options.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert(&root);
    let peer: SocketAddr =
        format!("{}:{}", options.get_host(), options.get_port()).parse().expect("a loopback address");

    let mut connection = PgConnection::connect_with(&options).await.expect("a TLS connection");
    // The connection's own port, as the server sees it.
    let port: i32 = sqlx::query_scalar("select inet_client_port()")
        .fetch_one(&mut connection)
        .await
        .expect("the client's port");
    let sockets = sockets_connected_to(peer, u16::try_from(port).expect("a port"));
    assert_eq!(sockets.len(), 1, "one socket to {peer}");
    assert!(
        sockets[0].nodelay().expect("TCP_NODELAY readable"),
        "Nagle's algorithm is on for the database socket"
    );
    connection.close().await.expect("closed");
}
