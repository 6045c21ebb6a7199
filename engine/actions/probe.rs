//! Probes: read-only checks used by `check`, gates, `only_if`, `wait_until`, and gate evidence.
//!
//! A probe never changes anything. Its result records whether it passed and, line by line,
//! which criterion held and what was observed, so a gate failure explains itself.

use std::time::{Duration, Instant};

use super::args::Args;
use super::perform::{check_exit, connect_postgres, shell_spec};
use super::{http, shell, yaml};
use crate::execute::Context;
use crate::interpolate::Scope;
use crate::model::Call;
use crate::schema::CallKind;

/// The result of one probe.
#[derive(Debug, Clone, Default)]
pub struct ProbeResult {
    pub passed: bool,
    /// One line per criterion: `PASS ...` or `FAIL ...`, with what was observed.
    pub lines: Vec<String>,
    /// The HTTP exchange in `curl -sv` form, for evidence.
    pub transcript: Option<String>,
}

impl ProbeResult {
    fn verdict(passed: bool, line: impl Into<String>) -> ProbeResult {
        let mark = if passed { "PASS" } else { "FAIL" };
        ProbeResult { passed, lines: vec![format!("{mark} {}", line.into())], transcript: None }
    }

    fn error(message: impl Into<String>) -> ProbeResult {
        ProbeResult::verdict(false, message)
    }
}

/// The results of several probes that must all pass.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub passed: bool,
    pub results: Vec<ProbeResult>,
}

impl Evaluation {
    /// Returns a failed evaluation with one line saying why.
    pub fn timed_out(message: &str) -> Evaluation {
        Evaluation { passed: false, results: vec![ProbeResult::error(message)] }
    }

    /// Returns every criterion line of every probe.
    pub fn lines(&self) -> Vec<String> {
        self.results.iter().flat_map(|result| result.lines.clone()).collect()
    }

    /// Returns the criteria lines joined on one line.
    pub fn summary(&self) -> String {
        self.lines().join("; ")
    }

    /// Returns the HTTP transcripts of the probes.
    pub fn transcripts(&self) -> Vec<String> {
        self.results.iter().filter_map(|result| result.transcript.clone()).collect()
    }
}

/// Evaluates probes in order; all must pass.
pub async fn evaluate_all(context: &Context, probes: &[Call], scope: &Scope) -> Evaluation {
    let mut evaluation = Evaluation { passed: true, results: Vec::new() };
    for probe in probes {
        let result = evaluate(context, probe, scope).await;
        evaluation.passed &= result.passed;
        evaluation.results.push(result);
    }
    evaluation
}

/// Evaluates one probe.
pub async fn evaluate(context: &Context, call: &Call, scope: &Scope) -> ProbeResult {
    let args = Args::new(call, scope);
    let result = match call.kind {
        CallKind::Query => query(context, &args).await,
        CallKind::Command => command(context, &args).await,
        CallKind::Http => http_probe(context, &args).await,
        CallKind::FileCheck => file_check(&args),
        CallKind::YamlCheck => yaml_check(&args),
        CallKind::Container => container(context, &args).await,
        CallKind::DockerExec => docker_exec(context, &args).await,
        CallKind::DockerImage => docker_image(context, &args).await,
        CallKind::WaitUntil => return Box::pin(wait_until(context, call, scope)).await,
        _ => Err(format!("`{}` can't be used as a probe", call.schema().name)),
    };
    let mut result = result.unwrap_or_else(ProbeResult::error);
    result.lines = result.lines.iter().map(|line| context.reporter.redact(line)).collect();
    result.transcript = result.transcript.map(|text| context.reporter.redact(&text));
    result
}

async fn query(context: &Context, args: &Args<'_>) -> Result<ProbeResult, String> {
    let connection = args.connection("connection").ok_or("missing connection")?;
    let sql = args.sql("sql")?;
    let client = connect_postgres(context, &connection, args.scope).await?;
    let first_line = sql.lines().find(|line| !line.trim().is_empty()).unwrap_or("").trim().to_string();
    let statements = super::postgres::split_statements(&sql);

    let mut rows = Vec::new();
    let mut failure = None;
    for statement in &statements {
        match super::postgres::query(&client, statement).await {
            Ok(result) => rows = result,
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }

    if let Some(expected) = args.text_opt("expect_error")? {
        return Ok(match failure {
            Some(error) => {
                let observed = format!("{} {}: {}", error.code.clone().unwrap_or_default(), error.condition.clone().unwrap_or_default(), error.message);
                let matches = error.code.as_deref() == Some(expected.as_str()) || error.condition.as_deref() == Some(expected.as_str()) || error.message.contains(&expected);
                ProbeResult::verdict(matches, format!("query `{first_line}` fails with {expected} (observed {observed})"))
            }
            None => ProbeResult::verdict(false, format!("query `{first_line}` fails with {expected} (observed success, {} row(s))", rows.len())),
        });
    }

    if let Some(error) = failure {
        return Ok(ProbeResult::verdict(false, format!("query `{first_line}` succeeds (observed {error})")));
    }
    Ok(check_rows(&first_line, &rows, args)?)
}

fn check_rows(first_line: &str, rows: &[Vec<Option<String>>], args: &Args<'_>) -> Result<ProbeResult, String> {
    let observed: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(|cell| cell.clone().unwrap_or_else(|| "NULL".into())).collect()).collect();
    if let Some(expected_rows) = args.value("rows")? {
        let expected = expected_table(&expected_rows);
        let passed = expected.len() == observed.len() && expected.iter().zip(&observed).all(|(want, got)| want.len() == got.len() && want.iter().zip(got).all(|(w, g)| cell_matches(w, g)));
        let expected_text = serde_json::to_string(&expected).unwrap_or_default();
        let observed_text = serde_json::to_string(&observed).unwrap_or_default();
        return Ok(ProbeResult::verdict(passed, format!("query `{first_line}` returns {expected_text} (observed {observed_text})")));
    }
    if let Some(count) = args.integer("expect_rows") {
        return Ok(ProbeResult::verdict(observed.len() as i64 == count, format!("query `{first_line}` returns {count} row(s) (observed {})", observed.len())));
    }
    Ok(ProbeResult::verdict(!observed.is_empty(), format!("query `{first_line}` returns at least one row (observed {})", observed.len())))
}

fn expected_table(value: &serde_json::Value) -> Vec<Vec<serde_json::Value>> {
    match value {
        serde_json::Value::Array(rows) => rows.iter().map(|row| match row {
            serde_json::Value::Array(cells) => cells.clone(),
            other => vec![other.clone()],
        }).collect(),
        other => vec![vec![other.clone()]],
    }
}

/// Compares an expected value with PostgreSQL's text output (`t`/`f` for booleans).
fn cell_matches(expected: &serde_json::Value, observed: &str) -> bool {
    match expected {
        serde_json::Value::Bool(true) => matches!(observed, "t" | "true"),
        serde_json::Value::Bool(false) => matches!(observed, "f" | "false"),
        serde_json::Value::Null => observed == "NULL",
        serde_json::Value::String(text) => text == observed,
        other => other.to_string() == observed,
    }
}

/// Marks a probe's processes with the running step's marker, so a resumed run can kill the
/// ones a killed run left behind (see `execute::leftovers`).
fn tag_with_step(context: &Context, spec: &mut shell::ShellSpec) {
    if let Some(step) = crate::execute::current_step() {
        spec.env.push((crate::execute::leftovers::MARKER_VARIABLE.to_string(), context.step_marker(&step)));
    }
}

async fn command(context: &Context, args: &Args<'_>) -> Result<ProbeResult, String> {
    let mut spec = shell_spec(args)?;
    tag_with_step(context, &mut spec);
    let accepted = spec.expect_exit.clone();
    spec.expect_exit = (0..=255).collect();
    let script_line = summarize_script(&spec.script);
    let outcome = shell::run(&spec, |_, _| {}).await.map_err(|error| error.to_string())?;

    let mut result = ProbeResult::verdict(accepted.contains(&outcome.exit_code), format!("command `{script_line}` exits with {accepted:?} (observed {})", outcome.exit_code));
    if let Some(text) = args.text_opt("expect_stdout_contains")? {
        let contains = outcome.stdout.contains(&text);
        result.passed &= contains;
        result.lines.push(format!("{} stdout contains {text:?}", if contains { "PASS" } else { "FAIL" }));
    }
    Ok(result)
}

/// Returns a script's first line, with the number of lines when there are more.
fn summarize_script(script: &str) -> String {
    let lines: Vec<&str> = script.lines().filter(|line| !line.trim().is_empty()).collect();
    match lines.as_slice() {
        [] => String::new(),
        [only] => only.trim().to_string(),
        [first, ..] => format!("{} … ({} lines)", first.trim(), lines.len()),
    }
}

/// Builds the request and the pass and fail conditions of an `http` call.
fn http_request(args: &Args<'_>) -> Result<(http::HttpRequest, Vec<http::HttpCondition>, Vec<http::HttpCondition>), String> {
    let mut request = http::HttpRequest::new(args.text_opt("method")?.unwrap_or_else(|| "GET".into()), args.text("url")?);
    request.headers = args.map("headers")?;
    request.body = args.text_opt("body")?;
    if let Some(timeout) = args.duration("timeout") {
        request.timeout = timeout;
    }

    let status = |codes: Vec<i64>| -> Result<Option<http::HttpCondition>, String> {
        if codes.is_empty() {
            return Ok(None);
        }
        let text = codes.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        http::StatusMatch::parse(&text).map(|status| Some(http::HttpCondition::Status(status))).map_err(|error| error.0)
    };
    let headers = |name: &str| -> Result<Vec<http::HttpCondition>, String> {
        args.map(name)?.into_iter().map(|(header, pattern)| regex::Regex::new(&pattern).map(|regex| http::HttpCondition::HeaderMatches { name: header, regex }).map_err(|error| format!("invalid pattern for header {pattern}: {error}"))).collect()
    };

    let mut pass: Vec<http::HttpCondition> = status(args.integers("expect_status"))?.into_iter().collect();
    pass.extend(args.list("expect_body_contains")?.into_iter().map(http::HttpCondition::BodyContains));
    pass.extend(args.value_entries("expect_json")?.into_iter().map(|(path, value)| http::HttpCondition::JsonEquals { path, value }));
    pass.extend(headers("expect_header")?);
    if pass.is_empty() {
        pass.push(http::HttpCondition::Status(http::StatusMatch::parse("2xx").map_err(|error| error.0)?));
    }

    let mut fail: Vec<http::HttpCondition> = status(args.integers("fail_status"))?.into_iter().collect();
    if args.boolean("fail_on_redirect").unwrap_or(false) {
        fail.push(http::HttpCondition::IsRedirect);
    }
    fail.extend(args.list("fail_body_contains")?.into_iter().map(http::HttpCondition::BodyContains));
    fail.extend(headers("fail_header")?);
    Ok((request, pass, fail))
}

async fn http_probe(context: &Context, args: &Args<'_>) -> Result<ProbeResult, String> {
    let (request, pass, fail) = http_request(args)?;
    let exchange = match request.send().await {
        Ok(exchange) => exchange,
        Err(error) => return Ok(ProbeResult::error(format!("{} {} answers (observed: {error})", request.method, request.url))),
    };

    let mut result = ProbeResult { passed: true, lines: Vec::new(), transcript: Some(exchange.transcript(&|text| context.reporter.redact(text))) };
    for outcome in http::evaluate(&exchange, &pass) {
        result.passed &= outcome.passed;
        let mark = if outcome.passed { "PASS" } else { "FAIL" };
        result.lines.push(format!("{mark} {} (observed {})", outcome.condition, outcome.observed));
    }
    for outcome in http::evaluate(&exchange, &fail) {
        if outcome.passed {
            result.passed = false;
            result.lines.push(format!("FAIL stop criterion met: {} (observed {})", outcome.condition, outcome.observed));
        } else {
            result.lines.push(format!("PASS stop criterion not met: {}", outcome.condition));
        }
    }
    Ok(result)
}

fn file_check(args: &Args<'_>) -> Result<ProbeResult, String> {
    let path = args.text("path")?;
    let content = std::fs::read(&path).ok();
    let want_exists = args.boolean("exists").unwrap_or(true);
    let mut result = ProbeResult::verdict(content.is_some() == want_exists, format!("{path} {} (observed {})", if want_exists { "exists" } else { "does not exist" }, if content.is_some() { "present" } else { "absent" }));
    if let Some(text) = args.text_opt("contains")? {
        let contains = content.as_deref().is_some_and(|bytes| String::from_utf8_lossy(bytes).contains(&text));
        result.passed &= contains;
        result.lines.push(format!("{} {path} contains {text:?}", if contains { "PASS" } else { "FAIL" }));
    }
    Ok(result)
}

fn yaml_check(args: &Args<'_>) -> Result<ProbeResult, String> {
    let file = args.text("file")?;
    let key_text = args.text("key")?;
    let key: yaml::KeyPath = key_text.parse().map_err(|error: yaml::YamlEditError| error.to_string())?;
    let value = match std::fs::read_to_string(&file) {
        Ok(text) => yaml::get(&text, &key).map_err(|error| format!("{file}: {error}"))?,
        Err(_) => None,
    };

    let mut result = ProbeResult { passed: true, lines: Vec::new(), transcript: None };
    let mut check = |passed: bool, line: String| {
        result.passed &= passed;
        result.lines.push(format!("{} {line}", if passed { "PASS" } else { "FAIL" }));
    };
    let observed = value.as_ref().map_or("absent".to_string(), |value| value.to_string());
    if let Some(exists) = args.boolean("exists") {
        check(value.is_some() == exists, format!("{key_text} in {file} {} (observed {observed})", if exists { "exists" } else { "is absent" }));
    }
    if let Some(empty) = args.boolean("empty") {
        check(is_empty_value(value.as_ref()) == empty, format!("{key_text} in {file} is {}empty (observed {observed})", if empty { "" } else { "not " }));
    }
    if let Some(expected) = args.value("equals")? {
        check(value.as_ref() == Some(&expected), format!("{key_text} in {file} equals {expected} (observed {observed})"));
    }
    let no_criteria = args.boolean("exists").is_none() && args.boolean("empty").is_none() && args.call.arg("equals").is_none();
    if no_criteria {
        check(value.is_some(), format!("{key_text} in {file} exists (observed {observed})"));
    }
    Ok(result)
}

fn is_empty_value(value: Option<&serde_json::Value>) -> bool {
    match value {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Array(items)) => items.is_empty(),
        Some(serde_json::Value::Object(map)) => map.is_empty(),
        Some(serde_json::Value::String(text)) => text.is_empty(),
        Some(_) => false,
    }
}

async fn container(context: &Context, args: &Args<'_>) -> Result<ProbeResult, String> {
    let name = args.text("name")?;
    let info = super::perform::docker_for(context, args).await?.inspect_container(&name).await.map_err(|error| error.to_string())?;
    let mut result = ProbeResult { passed: true, lines: Vec::new(), transcript: None };
    let mut check = |passed: bool, line: String| {
        result.passed &= passed;
        result.lines.push(format!("{} {line}", if passed { "PASS" } else { "FAIL" }));
    };

    let want_exists = args.boolean("exists").unwrap_or(true);
    check(info.is_some() == want_exists, format!("container {name} {}", if want_exists { "exists" } else { "does not exist" }));
    if let Some(info) = &info {
        if let Some(running) = args.boolean("running") {
            check(info.running == running, format!("container {name} running is {running} (observed {})", info.running));
        }
        if let Some(healthy) = args.boolean("healthy") {
            let observed = info.health.clone().unwrap_or_else(|| "no health check".into());
            check((observed == "healthy") == healthy, format!("container {name} healthy is {healthy} (observed {observed})"));
        }
        if let Some(network) = args.text_opt("network")? {
            let attached = info.networks.iter().any(|(name, _)| *name == network);
            let names: Vec<&str> = info.networks.iter().map(|(name, _)| name.as_str()).collect();
            check(attached, format!("container {name} is on network {network} (observed {names:?})"));
        }
        if let Some(published) = args.boolean("published_ports") {
            check(info.published_ports.is_empty() != published, format!("container {name} has {}published ports (observed {:?})", if published { "" } else { "no " }, info.published_ports));
        }
    }
    Ok(result)
}

async fn docker_exec(context: &Context, args: &Args<'_>) -> Result<ProbeResult, String> {
    let container = args.text("container")?;
    let command = args.list("command")?;
    let user = args.text_opt("user")?;
    let output = super::perform::docker_for(context, args).await?.exec(&container, &command, &args.map("env")?, user.as_deref()).await.map_err(|error| error.to_string())?;
    let exit = check_exit(&format!("exec {command:?} in {container}"), output.exit_code, &args.integers("expect_exit"), &output.stderr);
    let mut result = ProbeResult::verdict(exit.is_ok(), exit.err().unwrap_or_else(|| format!("exec {command:?} in {container} exits as expected")));
    if let Some(text) = args.text_opt("expect_stdout_contains")? {
        let contains = output.stdout.contains(&text);
        result.passed &= contains;
        result.lines.push(format!("{} output contains {text:?}", if contains { "PASS" } else { "FAIL" }));
    }
    Ok(result)
}

async fn docker_image(context: &Context, args: &Args<'_>) -> Result<ProbeResult, String> {
    let image = args.text("image")?;
    let present = super::perform::docker_for(context, args).await?.image_exists(&image).await.map_err(|error| error.to_string())?;
    Ok(ProbeResult::verdict(present, format!("image {image} is present")))
}

const DEFAULT_WAIT_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(120);

async fn wait_until(context: &Context, call: &Call, scope: &Scope) -> ProbeResult {
    let args = Args::new(call, scope);
    let interval = args.duration("interval").unwrap_or(DEFAULT_WAIT_INTERVAL);
    let timeout = args.duration("timeout").unwrap_or(DEFAULT_WAIT_TIMEOUT);
    let Some(probe) = &call.nested else { return ProbeResult::error("wait_until has no probe") };

    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut result = evaluate(context, probe, scope).await;
        if result.passed || started.elapsed() + interval > timeout {
            let verdict = if result.passed { "passed" } else { "timed out" };
            result.lines.push(format!("{} wait_until {verdict} after {attempts} attempt(s) in {:.1}s", if result.passed { "PASS" } else { "FAIL" }, started.elapsed().as_secs_f64()));
            return result;
        }
        tokio::time::sleep(interval).await;
    }
}

/// Collects one piece of gate evidence: a title and its text.
pub async fn collect_evidence(context: &Context, call: &Call, scope: &Scope) -> (String, String) {
    let args = Args::new(call, scope);
    match call.kind {
        CallKind::DockerLogs => {
            let container = args.text("container").unwrap_or_default();
            let lines = args.integer("tail").unwrap_or(50).max(1) as usize;
            let title = format!("last {lines} log lines of container {container}");
            let text = match super::perform::docker_for(context, &args).await {
                Ok(docker) => docker.logs_tail(&container, lines).await.unwrap_or_else(|error| format!("(could not read logs: {error})")),
                Err(error) => format!("(could not reach Docker: {error})"),
            };
            (title, context.reporter.redact(&text))
        }
        CallKind::Command => {
            let title = format!("output of `{}`", args.shell("run").unwrap_or_default().lines().next().unwrap_or(""));
            let text = match shell_spec(&args) {
                Ok(mut spec) => {
                    spec.expect_exit = (0..=255).collect();
                    match shell::run(&spec, |_, _| {}).await {
                        Ok(outcome) => format!("exit code {}\n--- stdout\n{}--- stderr\n{}", outcome.exit_code, outcome.stdout, outcome.stderr),
                        Err(error) => format!("(command failed: {error})"),
                    }
                }
                Err(error) => format!("(invalid command: {error})"),
            };
            (title, context.reporter.redact(&text))
        }
        _ => {
            let result = evaluate(context, call, scope).await;
            let mut text = result.lines.join("\n");
            if let Some(transcript) = result.transcript {
                text.push_str("\n\n");
                text.push_str(&transcript);
            }
            (format!("{} probe", call.schema().name), text)
        }
    }
}
