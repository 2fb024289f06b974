//! The generic loopback HTTP server under the fake.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rps_replay::server::{Response, Server, ServerConfig};

async fn connect(server: &Server) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn req(uri: &str, body: &'static [u8]) -> hyper::Request<Full<Bytes>> {
    hyper::Request::post(uri)
        .header("host", "localhost")
        .header("x-test", "1")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_keep_alive_counters_and_limits() {
    let config = ServerConfig {
        max_body: 16,
        shutdown_grace: Duration::from_millis(200),
    };
    let server = Server::bind_with("127.0.0.1:0", config, |r| async move {
        if r.path() == "/drop" {
            return Response::dropped();
        }
        Response::text(
            201,
            format!(
                "{} {} {:?} {} {}",
                r.method,
                r.path(),
                r.query(),
                r.header("X-Test").unwrap_or(""),
                String::from_utf8_lossy(&r.body)
            ),
        )
        .with_header("x-reply", "yes")
    })
    .await
    .unwrap();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let mut c = connect(&server).await;
    for i in 0..3 {
        c.ready().await.unwrap();
        let resp = c.send_request(req("/a/b?x=1", b"hello")).await.unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["x-reply"], "yes");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"POST /a/b Some(\"x=1\") 1 hello", "request {i}");
    }
    let stats = server.stats();
    assert_eq!(stats.connections, 1, "keep-alive reuses the connection");
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.open_connections, 1);
    // Over the body limit.
    c.ready().await.unwrap();
    let resp = c
        .send_request(req("/big", b"0123456789abcdefXYZ"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // A dropped connection: the client sees an error, not a response.
    let mut c2 = connect(&server).await;
    assert!(c2.send_request(req("/drop", b"")).await.is_err());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_in_flight_requests() {
    let server = Server::bind("127.0.0.1:0", |_| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Response::text(200, "late")
    })
    .await
    .unwrap();
    let mut c = connect(&server).await;
    let pending = tokio::spawn(async move { c.send_request(req("/", b"")).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.shutdown().await;
    let resp = pending.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
}
