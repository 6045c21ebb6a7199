use std::net::SocketAddr;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// Starts an HTTP/1.1 server on 127.0.0.1 that returns canned responses chosen by path.
/// It stops when the test's runtime ends.
async fn start_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
    address
}

async fn answer(mut stream: TcpStream) {
    let (head, body) = read_request(&mut stream).await;
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let target = request_line.split(' ').nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_owned();

    let (status, headers, body): (&str, Vec<(&str, String)>, Vec<u8>) = match path.as_str() {
        "/health" => (
            "200 OK",
            vec![("Content-Type", "application/json".into()), ("X-Version", "1.4.2".into())],
            br#"{"status":"up","checks":{"db":{"ok":true,"latency":12.0}},"items":[1,2],"a/b":"slash"}"#.to_vec(),
        ),
        "/old" => ("302 Found", vec![("Location", "/new".into())], b"moved".to_vec()),
        "/new" => ("200 OK", vec![], b"followed".to_vec()),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ("200 OK", vec![], b"late".to_vec())
        }
        "/big" => ("200 OK", vec![], vec![b'x'; 2 * MAX_BODY_BYTES]),
        "/echo" => ("201 Created", vec![("Set-Cookie", "session=abc123".into())], body),
        _ => ("503 Service Unavailable", vec![], b"down".to_vec()),
    };

    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut buffer).await.unwrap_or(0);
        if n == 0 {
            return (String::from_utf8_lossy(&data).into_owned(), Vec::new());
        }
        data.extend_from_slice(&buffer[..n]);
        if let Some(pos) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };

    let head = String::from_utf8_lossy(&data[..header_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = data[header_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buffer).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buffer[..n]);
    }
    (head, body)
}

fn get(address: SocketAddr, path: &str) -> HttpRequest {
    HttpRequest::new("GET", format!("http://{address}{path}"))
}

#[tokio::test]
async fn send_records_status_headers_body() {
    let address = start_server().await;
    let exchange = get(address, "/health").send().await.unwrap();

    assert_eq!(exchange.status, 200, "status");
    assert_eq!(exchange.reason, "OK", "reason");
    assert_eq!(exchange.version, "HTTP/1.1", "version");
    assert_eq!(
        exchange.header_values("x-version"),
        vec!["1.4.2"],
        "header lookup is case-insensitive"
    );
    assert!(
        exchange.body.starts_with(r#"{"status":"up""#),
        "body: {}",
        exchange.body
    );
    assert!(!exchange.body_truncated, "small body marked truncated");
}

#[tokio::test]
async fn send_does_not_follow_redirect() {
    let address = start_server().await;
    let exchange = get(address, "/old").send().await.unwrap();
    let results = evaluate(
        &exchange,
        &[
            HttpCondition::IsRedirect,
            HttpCondition::Status(StatusMatch::parse("3xx").unwrap()),
        ],
    );

    assert_eq!(exchange.status, 302, "status of the redirect itself");
    assert_eq!(
        exchange.body, "moved",
        "body of the redirect, not of its target"
    );
    assert_eq!(
        exchange.header_values("location"),
        vec!["/new"],
        "Location header"
    );
    assert!(results[0].passed, "IsRedirect: {:?}", results[0]);
    assert_eq!(
        results[0].observed, "302 Found, Location: /new",
        "IsRedirect observed"
    );
    assert!(results[1].passed, "status 3xx: {:?}", results[1]);
}

#[tokio::test]
async fn send_times_out() {
    let address = start_server().await;
    let mut request = get(address, "/slow");
    request.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = request.send().await;

    assert!(
        matches!(result, Err(HttpError::TimedOut { .. })),
        "expected TimedOut, got {result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "timeout took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connection_refused_is_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let result = get(address, "/").send().await;

    assert!(
        matches!(result, Err(HttpError::Connect { .. })),
        "expected Connect, got {result:?}"
    );
}

#[tokio::test]
async fn server_error_status_is_an_exchange() {
    let address = start_server().await;
    let exchange = get(address, "/missing")
        .send()
        .await
        .expect("a 503 is a response, not an error");

    assert_eq!(exchange.status, 503, "status");
}

#[tokio::test]
async fn large_body_is_truncated() {
    let address = start_server().await;
    let exchange = get(address, "/big").send().await.unwrap();

    assert_eq!(exchange.body.len(), MAX_BODY_BYTES, "kept body size");
    assert!(exchange.body_truncated, "truncation flag");
    assert!(
        exchange
            .transcript(&|s| s.to_owned())
            .ends_with("[body truncated after 1048576 bytes]"),
        "transcript notes truncation"
    );
}

#[tokio::test]
async fn conditions_report_observed_values() {
    let address = start_server().await;
    let exchange = get(address, "/health").send().await.unwrap();
    let conditions = vec![
        HttpCondition::Status(StatusMatch::parse("200,204").unwrap()),
        HttpCondition::Status(StatusMatch::parse("500-599").unwrap()),
        HttpCondition::HeaderMatches {
            name: "Content-Type".into(),
            regex: Regex::new("^application/json").unwrap(),
        },
        HttpCondition::HeaderMatches {
            name: "X-Missing".into(),
            regex: Regex::new(".").unwrap(),
        },
        HttpCondition::BodyContains("\"up\"".into()),
        HttpCondition::BodyContains("down".into()),
        HttpCondition::JsonEquals {
            path: "status".into(),
            value: json!("up"),
        },
        HttpCondition::JsonEquals {
            path: "checks.db.ok".into(),
            value: json!(true),
        },
        HttpCondition::JsonEquals {
            path: "/checks/db/latency".into(),
            value: json!(12),
        },
        HttpCondition::JsonEquals {
            path: "items.1".into(),
            value: json!(2),
        },
        HttpCondition::JsonEquals {
            path: "/a~1b".into(),
            value: json!("slash"),
        },
        HttpCondition::JsonEquals {
            path: "status".into(),
            value: json!("down"),
        },
        HttpCondition::JsonEquals {
            path: "checks.cache".into(),
            value: json!(true),
        },
        HttpCondition::IsRedirect,
    ];
    let expected: Vec<(bool, &str)> = vec![
        (true, "200 OK"),
        (false, "200 OK"),
        (true, "Content-Type: application/json"),
        (false, "no X-Missing header"),
        (true, "found at byte 10 of 86"),
        (false, "not found in 86 bytes of body"),
        (true, "\"up\""),
        (true, "true"),
        (true, "12.0"),
        (true, "2"),
        (true, "\"slash\""),
        (false, "\"up\""),
        (false, "no value at checks.cache"),
        (false, "200 OK, no Location header"),
    ];
    let results = evaluate(&exchange, &conditions);

    assert_eq!(results.len(), expected.len(), "one result per condition");
    for (result, (passed, observed)) in results.iter().zip(expected) {
        assert_eq!(result.passed, passed, "passed for `{}`", result.condition);
        assert_eq!(
            result.observed, observed,
            "observed for `{}`",
            result.condition
        );
    }
}

#[tokio::test]
async fn json_condition_on_non_json_body() {
    let address = start_server().await;
    let exchange = get(address, "/old").send().await.unwrap();
    let results = evaluate(
        &exchange,
        &[HttpCondition::JsonEquals {
            path: "a".into(),
            value: json!(1),
        }],
    );

    assert!(!results[0].passed, "non-JSON body passed");
    assert!(
        results[0].observed.starts_with("body is not JSON"),
        "observed: {}",
        results[0].observed
    );
}

#[tokio::test]
async fn transcript_redacts_secrets() {
    let address = start_server().await;
    let mut request = HttpRequest::new("post", format!("http://{address}/echo?token=s3cret"));
    request.headers = vec![
        ("Authorization".into(), "Bearer s3cret".into()),
        ("Content-Type".into(), "application/json".into()),
    ];
    request.body = Some(r#"{"password":"s3cret"}"#.into());
    let exchange = request.send().await.unwrap();
    let transcript = exchange.transcript(&|text: &str| text.replace("s3cret", REDACTED));

    assert!(
        !transcript.contains("s3cret"),
        "secret leaked into transcript:\n{transcript}"
    );
    assert!(
        !transcript.contains("abc123"),
        "Set-Cookie value leaked:\n{transcript}"
    );
    assert!(
        transcript.starts_with("> POST /echo?token=(sensitive) HTTP/1.1\n"),
        "request line:\n{transcript}"
    );
    assert!(
        transcript.contains(&format!("> Host: {address}\n")),
        "Host header:\n{transcript}"
    );
    assert!(
        transcript.contains("> Authorization: (sensitive)\n"),
        "Authorization header:\n{transcript}"
    );
    assert!(
        transcript.contains("< HTTP/1.1 201 Created\n"),
        "status line:\n{transcript}"
    );
    assert!(
        transcript.contains("< set-cookie: (sensitive)\n"),
        "Set-Cookie header:\n{transcript}"
    );
    assert!(
        transcript.ends_with("<\n{\"password\":\"(sensitive)\"}"),
        "body after a blank line:\n{transcript}"
    );
}

#[test]
fn authorization_is_redacted_without_a_redact_function() {
    let exchange = HttpExchange {
        request: SentRequest {
            method: "GET".into(),
            url: "http://127.0.0.1/".into(),
            headers: vec![("authorization".into(), "Basic dXNlcjpwYXNz".into())],
            body: None,
        },
        version: "HTTP/1.1".into(),
        status: 204,
        reason: "No Content".into(),
        headers: vec![],
        body: String::new(),
        body_truncated: false,
        duration: Duration::ZERO,
    };
    let transcript = exchange.transcript(&|s| s.to_owned());

    assert!(
        transcript.contains("> authorization: (sensitive)\n"),
        "transcript:\n{transcript}"
    );
    assert!(
        !transcript.contains("dXNlcjpwYXNz"),
        "credentials leaked:\n{transcript}"
    );
}

#[test]
fn status_match_parses_forms() {
    let cases: Vec<(&str, Option<StatusMatch>)> = vec![
        ("200", Some(StatusMatch::Codes(vec![200]))),
        ("200, 204", Some(StatusMatch::Codes(vec![200, 204]))),
        ("3xx", Some(StatusMatch::Class(3))),
        ("2XX", Some(StatusMatch::Class(2))),
        ("200-299", Some(StatusMatch::Range(200, 299))),
        ("299-200", None),
        ("6xx", None),
        ("abc", None),
        ("99", None),
        ("", None),
    ];

    for (text, expected) in cases {
        assert_eq!(StatusMatch::parse(text).ok(), expected, "parse {text:?}");
    }
}

#[test]
fn invalid_requests_are_rejected() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bad_method = HttpRequest::new("GE T", "http://127.0.0.1/");
    let bad_scheme = HttpRequest::new("GET", "ftp://127.0.0.1/");
    let mut bad_header = HttpRequest::new("GET", "http://127.0.0.1/");
    bad_header.headers = vec![("X-Bad".into(), "line\nbreak".into())];

    let method = runtime.block_on(bad_method.send());
    let scheme = runtime.block_on(bad_scheme.send());
    let header = runtime.block_on(bad_header.send());
    assert!(
        matches!(method, Err(HttpError::InvalidMethod(_))),
        "method: {method:?}"
    );
    assert!(
        matches!(scheme, Err(HttpError::InvalidUrl { .. })),
        "scheme: {scheme:?}"
    );
    assert!(
        matches!(header, Err(HttpError::InvalidHeader { .. })),
        "header: {header:?}"
    );
}

#[test]
fn url_password_is_hidden_in_errors() {
    assert_eq!(
        display_url("http://user:pw@host/x"),
        "http://user:(sensitive)@host/x",
        "password hidden"
    );
    assert_eq!(
        display_url("http://host/x"),
        "http://host/x",
        "URL without password unchanged"
    );
}
