//! HTTP action: send one request, record the exchange, and check conditions on it for gates.
//!
//! Invariants: redirects are never followed, so a 3xx response and its `Location` header are
//! what the step observes. The response body kept is bounded to [`MAX_BODY_BYTES`]. A
//! transcript never shows the values of the headers in [`SENSITIVE_HEADERS`].

use std::fmt;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

/// Maximum number of response body bytes kept in [`HttpExchange::body`].
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Headers whose values a transcript always replaces with [`REDACTED`], compared
/// case-insensitively.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Text shown in place of a secret value.
pub const REDACTED: &str = "(sensitive)";

/// Timeout used by [`HttpRequest::new`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// User-Agent header sent with every request.
const USER_AGENT: &str = concat!("rb6/", env!("CARGO_PKG_VERSION"));

/// One HTTP request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, such as `GET` or `POST`.
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Request headers, in order.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Option<String>,
    /// Limit for the whole exchange: connect, send and read the body.
    pub timeout: Duration,
}

/// Method, URL and headers of a request as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    /// Method in upper case.
    pub method: String,
    /// URL as parsed and normalized.
    pub url: String,
    /// Headers sent: `Host`, `User-Agent` and `Accept` defaults plus the request's own.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Option<String>,
}

/// A request and the response it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpExchange {
    /// The request as sent.
    pub request: SentRequest,
    /// HTTP version of the response, such as `HTTP/1.1`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase registered for the status code, empty for unknown codes.
    pub reason: String,
    /// Response headers, in order; values that are not UTF-8 are decoded lossily.
    pub headers: Vec<(String, String)>,
    /// First [`MAX_BODY_BYTES`] of the response body, decoded as lossy UTF-8.
    pub body: String,
    /// True when the body was longer than [`MAX_BODY_BYTES`] and was cut.
    pub body_truncated: bool,
    /// Time from sending the request to reading the end of the body.
    pub duration: Duration,
}

/// Failure to complete an HTTP exchange. A response with any status code is not a failure.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum HttpError {
    /// The method is not a valid HTTP token.
    #[error("invalid HTTP method `{0}`")]
    #[diagnostic(help("use a method such as GET, POST, PUT, DELETE or HEAD"))]
    InvalidMethod(String),

    /// The URL cannot be parsed or is not http/https.
    #[error("invalid URL `{url}`: {reason}")]
    #[diagnostic(help("give an absolute URL starting with http:// or https://"))]
    InvalidUrl {
        /// URL as given.
        url: String,
        /// Reason the URL was rejected.
        reason: String,
    },

    /// A header name or value is not valid in HTTP.
    #[error("invalid request header `{name}`")]
    #[diagnostic(help(
        "header names are tokens without spaces; values must not contain newlines"
    ))]
    InvalidHeader {
        /// Header name as given.
        name: String,
    },

    /// No complete response arrived within the timeout.
    #[error("{method} {url} timed out after {}", humantime::format_duration(*.timeout))]
    #[diagnostic(help("check that the server is up and reachable, or raise the timeout"))]
    TimedOut {
        /// Request method.
        method: String,
        /// Request URL.
        url: String,
        /// Timeout that expired.
        timeout: Duration,
    },

    /// Connecting to the server failed.
    #[error("{method} {url}: connection failed: {source}")]
    #[diagnostic(help("check the host and port, and that the server is listening"))]
    Connect {
        /// Request method.
        method: String,
        /// Request URL.
        url: String,
        /// Error from the HTTP client.
        #[source]
        source: reqwest::Error,
    },

    /// The HTTP client could not be set up (TLS backend initialisation).
    #[error("failed to set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),

    /// Sending the request or reading the response failed after connecting.
    #[error("{method} {url} failed: {source}")]
    Transfer {
        /// Request method.
        method: String,
        /// Request URL.
        url: String,
        /// Error from the HTTP client.
        #[source]
        source: reqwest::Error,
    },
}

impl HttpRequest {
    /// Builds a request with no headers, no body and [`DEFAULT_TIMEOUT`].
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sends the request without following redirects and reads the response.
    ///
    /// Any status code, 4xx and 5xx included, returns an exchange; only transport failures
    /// and timeouts are errors.
    pub async fn send(&self) -> Result<HttpExchange, HttpError> {
        let (client, request, sent) = self.build()?;
        let started = Instant::now();
        tracing::debug!(method = %sent.method, url = %display_url(&sent.url), "sending HTTP request");

        let mut response = client
            .execute(request)
            .await
            .map_err(|e| self.client_error(&sent, e))?;
        let version = format!("{:?}", response.version());
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();

        let mut body = Vec::new();
        let mut body_truncated = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.client_error(&sent, e))?
        {
            let room = MAX_BODY_BYTES - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                body_truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }

        let exchange = HttpExchange {
            request: sent,
            version,
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_owned(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            body_truncated,
            duration: started.elapsed(),
        };
        tracing::debug!(status = exchange.status, bytes = body.len(), ?exchange.duration, "received HTTP response");
        Ok(exchange)
    }

    fn build(&self) -> Result<(reqwest::Client, reqwest::Request, SentRequest), HttpError> {
        let method = reqwest::Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| HttpError::InvalidMethod(self.method.clone()))?;
        let url = parse_url(&self.url)?;

        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(HttpError::Client)?;

        let mut builder = client.request(method.clone(), url.clone());
        for (name, value) in &self.headers {
            let name_ok = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok();
            let value_ok = reqwest::header::HeaderValue::from_str(value).is_ok();
            if !name_ok || !value_ok {
                return Err(HttpError::InvalidHeader { name: name.clone() });
            }
            builder = builder.header(name, value);
        }
        if let Some(body) = &self.body {
            builder = builder.body(body.clone());
        }
        let request = builder
            .build()
            .map_err(|e| self.client_error_for(&method, &url, e))?;

        let sent = SentRequest {
            method: method.to_string(),
            url: url.to_string(),
            headers: sent_headers(&url, &self.headers, self.body.as_deref()),
            body: self.body.clone(),
        };
        Ok((client, request, sent))
    }

    fn client_error(&self, sent: &SentRequest, error: reqwest::Error) -> HttpError {
        let (method, url) = (sent.method.clone(), display_url(&sent.url));
        if error.is_timeout() {
            HttpError::TimedOut {
                method,
                url,
                timeout: self.timeout,
            }
        } else if error.is_connect() {
            HttpError::Connect {
                method,
                url,
                source: error.without_url(),
            }
        } else {
            HttpError::Transfer {
                method,
                url,
                source: error.without_url(),
            }
        }
    }

    fn client_error_for(
        &self,
        method: &reqwest::Method,
        url: &reqwest::Url,
        error: reqwest::Error,
    ) -> HttpError {
        HttpError::Transfer {
            method: method.to_string(),
            url: display_url(url.as_str()),
            source: error.without_url(),
        }
    }
}

fn parse_url(text: &str) -> Result<reqwest::Url, HttpError> {
    let invalid = |reason: String| HttpError::InvalidUrl {
        url: display_url(text),
        reason,
    };
    let url = reqwest::Url::parse(text).map_err(|e| invalid(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(invalid(format!("scheme `{other}` is not http or https"))),
    }
}

/// Returns `url` with any password in it replaced by [`REDACTED`], for messages and logs.
fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some(REDACTED));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Lists the headers reqwest sends for this request: its defaults, then the request's own.
// NOTE: this mirrors reqwest 0.12 with hyper 1 (Host, User-Agent, Accept: */*,
// Content-Length); a header that hyper adds on its own would be missing here.
fn sent_headers(
    url: &reqwest::Url,
    own: &[(String, String)],
    body: Option<&str>,
) -> Vec<(String, String)> {
    let has = |name: &str| own.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut headers = Vec::new();

    if !has("host") {
        let host = url.host_str().unwrap_or_default();
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        headers.push(("Host".to_owned(), host));
    }
    if !has("user-agent") {
        headers.push(("User-Agent".to_owned(), USER_AGENT.to_owned()));
    }
    if !has("accept") {
        headers.push(("Accept".to_owned(), "*/*".to_owned()));
    }
    headers.extend(own.iter().cloned());
    if let Some(body) = body {
        if !has("content-length") {
            headers.push(("Content-Length".to_owned(), body.len().to_string()));
        }
    }
    headers
}

fn is_sensitive_header(name: &str) -> bool {
    SENSITIVE_HEADERS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
}

impl HttpExchange {
    /// Renders the exchange like `curl -sv` output: `> ` request lines, `< ` response lines,
    /// then the body.
    ///
    /// Every header value, the request target and both bodies pass through `redact`, and the
    /// values of [`SENSITIVE_HEADERS`] are replaced by [`REDACTED`] whatever `redact` does.
    pub fn transcript(&self, redact: &dyn Fn(&str) -> String) -> String {
        let mut out = String::new();
        let target = request_target(&self.request.url);
        out.push_str(&format!(
            "> {} {} HTTP/1.1\n",
            self.request.method,
            redact(&target)
        ));
        push_headers(&mut out, "> ", &self.request.headers, redact);
        out.push_str(">\n");
        if let Some(body) = &self.request.body {
            for line in redact(body).lines() {
                out.push_str(&format!("> {line}\n"));
            }
        }

        let status_line = format!("{} {} {}", self.version, self.status, self.reason);
        out.push_str(&format!("< {}\n", status_line.trim_end()));
        push_headers(&mut out, "< ", &self.headers, redact);
        out.push_str("<\n");

        out.push_str(&redact(&self.body));
        if self.body_truncated {
            out.push_str(&format!("\n[body truncated after {MAX_BODY_BYTES} bytes]"));
        }
        out
    }

    /// Returns the values of the response header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn push_headers(
    out: &mut String,
    prefix: &str,
    headers: &[(String, String)],
    redact: &dyn Fn(&str) -> String,
) {
    for (name, value) in headers {
        let displayed = if is_sensitive_header(name) {
            REDACTED.to_owned()
        } else {
            redact(value)
        };
        out.push_str(&format!("{prefix}{name}: {displayed}\n"));
    }
}

fn request_target(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_owned(),
        },
        Err(_) => url.to_owned(),
    }
}

/// Accepted status codes of a [`HttpCondition::Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusMatch {
    /// Any of these codes.
    Codes(Vec<u16>),
    /// Any code of this class: 3 stands for 300–399 (`3xx`).
    Class(u8),
    /// Any code from the first to the second, both included.
    Range(u16, u16),
}

/// Failure to parse a status condition.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("invalid status condition `{0}`")]
#[diagnostic(help("write a code (200), a list (200,204), a class (2xx) or a range (200-299)"))]
pub struct StatusMatchError(pub String);

impl StatusMatch {
    /// Parses `200`, `200,204`, `2xx` or `200-299`.
    pub fn parse(text: &str) -> Result<Self, StatusMatchError> {
        let invalid = || StatusMatchError(text.to_owned());
        let lower = text.trim().to_ascii_lowercase();

        if let Some(class) = lower.strip_suffix("xx") {
            let class: u8 = class.parse().map_err(|_| invalid())?;
            return (1..=5)
                .contains(&class)
                .then_some(Self::Class(class))
                .ok_or_else(invalid);
        }
        if let Some((low, high)) = lower.split_once('-') {
            let low = parse_code(low).ok_or_else(invalid)?;
            let high = parse_code(high).ok_or_else(invalid)?;
            return (low <= high)
                .then_some(Self::Range(low, high))
                .ok_or_else(invalid);
        }
        let codes: Option<Vec<u16>> = lower.split(',').map(parse_code).collect();
        codes.map(Self::Codes).ok_or_else(invalid)
    }

    /// Returns true when `status` is accepted.
    pub fn matches(&self, status: u16) -> bool {
        match self {
            Self::Codes(codes) => codes.contains(&status),
            Self::Class(class) => status / 100 == u16::from(*class),
            Self::Range(low, high) => (*low..=*high).contains(&status),
        }
    }
}

fn parse_code(text: &str) -> Option<u16> {
    let code: u16 = text.trim().parse().ok()?;
    (100..=599).contains(&code).then_some(code)
}

impl fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Codes(codes) => {
                let codes: Vec<String> = codes.iter().map(u16::to_string).collect();
                write!(f, "{}", codes.join(" or "))
            }
            Self::Class(class) => write!(f, "{class}xx"),
            Self::Range(low, high) => write!(f, "{low}-{high}"),
        }
    }
}

/// A check on an [`HttpExchange`], for gates and assertions.
#[derive(Debug, Clone)]
pub enum HttpCondition {
    /// The status code is accepted.
    Status(StatusMatch),
    /// Some value of the response header `name` matches `regex`.
    HeaderMatches {
        /// Header name, compared case-insensitively.
        name: String,
        /// Pattern searched in the value (unanchored).
        regex: Regex,
    },
    /// The (possibly truncated) body contains this text.
    BodyContains(String),
    /// The body is JSON and the value at `path` equals `value`.
    JsonEquals {
        /// JSON pointer (`/a/0/b`) or dotted path (`a.0.b`).
        path: String,
        /// Expected value; numbers compare by value, so 1 equals 1.0.
        value: Value,
    },
    /// The status is 301, 302, 303, 307 or 308 and a `Location` header is present.
    IsRedirect,
}

impl fmt::Display for HttpCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "status is {status}"),
            Self::HeaderMatches { name, regex } => write!(f, "header {name} matches /{regex}/"),
            Self::BodyContains(text) => write!(f, "body contains {text:?}"),
            Self::JsonEquals { path, value } => write!(f, "JSON {path} equals {value}"),
            Self::IsRedirect => write!(f, "response is a redirect"),
        }
    }
}

/// Result of one condition: what was checked, whether it passed, and what was observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionResult {
    /// The condition, as text.
    pub condition: String,
    /// True when the condition holds.
    pub passed: bool,
    /// Observed value, such as `302 Found` or the JSON value at the path.
    // NOTE: JSON values and header values are shown as received (only SENSITIVE_HEADERS are
    // redacted here); the caller redacts secrets before showing them.
    pub observed: String,
}

/// Maximum length of an observed JSON value in a [`ConditionResult`].
const MAX_OBSERVED_CHARS: usize = 200;

/// Evaluates each condition on `exchange`, in order.
pub fn evaluate(exchange: &HttpExchange, conditions: &[HttpCondition]) -> Vec<ConditionResult> {
    conditions
        .iter()
        .map(|condition| evaluate_one(exchange, condition))
        .collect()
}

fn evaluate_one(exchange: &HttpExchange, condition: &HttpCondition) -> ConditionResult {
    let (passed, observed) = match condition {
        HttpCondition::Status(status) => (status.matches(exchange.status), status_text(exchange)),
        HttpCondition::HeaderMatches { name, regex } => check_header(exchange, name, regex),
        HttpCondition::BodyContains(text) => check_body(exchange, text),
        HttpCondition::JsonEquals { path, value } => check_json(exchange, path, value),
        HttpCondition::IsRedirect => check_redirect(exchange),
    };
    ConditionResult {
        condition: condition.to_string(),
        passed,
        observed,
    }
}

fn status_text(exchange: &HttpExchange) -> String {
    format!("{} {}", exchange.status, exchange.reason)
        .trim_end()
        .to_owned()
}

fn check_header(exchange: &HttpExchange, name: &str, regex: &Regex) -> (bool, String) {
    let values = exchange.header_values(name);
    if values.is_empty() {
        return (false, format!("no {name} header"));
    }

    let passed = values.iter().any(|v| regex.is_match(v));
    let displayed: Vec<&str> = if is_sensitive_header(name) {
        vec![REDACTED]
    } else {
        values
    };
    (passed, format!("{name}: {}", displayed.join(", ")))
}

fn check_body(exchange: &HttpExchange, text: &str) -> (bool, String) {
    let size = exchange.body.len();
    let cut = if exchange.body_truncated {
        " (truncated)"
    } else {
        ""
    };
    match exchange.body.find(text) {
        Some(offset) => (true, format!("found at byte {offset} of {size}{cut}")),
        None => (false, format!("not found in {size} bytes of body{cut}")),
    }
}

fn check_json(exchange: &HttpExchange, path: &str, expected: &Value) -> (bool, String) {
    let document: Value = match serde_json::from_str(&exchange.body) {
        Ok(document) => document,
        Err(e) => return (false, format!("body is not JSON: {e}")),
    };

    match document.pointer(&json_pointer(path)) {
        Some(found) => (json_equal(found, expected), shorten(&found.to_string())),
        None => (false, format!("no value at {path}")),
    }
}

fn check_redirect(exchange: &HttpExchange) -> (bool, String) {
    let is_redirect_status = matches!(exchange.status, 301 | 302 | 303 | 307 | 308);
    match exchange.header_values("location").first() {
        Some(location) => (
            is_redirect_status,
            format!("{}, Location: {location}", status_text(exchange)),
        ),
        None => (
            false,
            format!("{}, no Location header", status_text(exchange)),
        ),
    }
}

/// Converts a dotted path (`a.0.b`) to a JSON pointer (`/a/0/b`); a pointer is kept as is.
pub fn json_pointer(path: &str) -> String {
    if path.is_empty() || path.starts_with('/') {
        return path.to_owned();
    }
    path.split('.')
        .map(|key| format!("/{}", key.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn json_equal(found: &Value, expected: &Value) -> bool {
    match (found, expected) {
        (Value::Number(a), Value::Number(b)) => {
            match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => a.as_f64() == b.as_f64(),
            }
        }
        _ => found == expected,
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_OBSERVED_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_OBSERVED_CHARS).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests;
