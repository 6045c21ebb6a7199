//! Performing actions: renders a call's arguments and runs it with the right engine.
//!
//! Each action returns an [`ActionOutput`]: its standard output (for `capture { stdout = true }`)
//! and what undo needs (e.g. the previous content of an edited file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::args::Args;
use super::{compose, docker, file, postgres, probe, shell, yaml};
use crate::execute::Context;
use crate::interpolate::Scope;
use crate::model::Call;
use crate::schema::CallKind;

/// The result of an action.
#[derive(Debug, Clone, Default)]
pub struct ActionOutput {
    pub stdout: String,
    /// Data for the automatic inverse; `Null` when there is none.
    pub undo: serde_json::Value,
}

impl ActionOutput {
    fn stdout(stdout: impl Into<String>) -> ActionOutput {
        ActionOutput { stdout: stdout.into(), undo: serde_json::Value::Null }
    }

    fn undo(undo: serde_json::Value) -> ActionOutput {
        ActionOutput { stdout: String::new(), undo }
    }
}

/// Default timeout of a one-shot container.
const DOCKER_RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Default timeout for stopping or restarting a container.
const DOCKER_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one action call.
pub async fn perform(context: &Context, step: &str, call: &Call, scope: &Scope) -> Result<ActionOutput, String> {
    let args = Args::new(call, scope);
    match call.kind {
        CallKind::Sql => run_sql(context, step, &args).await,
        CallKind::Shell => run_shell(context, step, &args).await,
        CallKind::File => write_file(&args),
        CallKind::Copy => copy_file(&args),
        CallKind::Directory => create_directory(&args),
        CallKind::RemoveDirectory => remove_directory(&args),
        CallKind::Block => edit_block(&args),
        CallKind::YamlSet | CallKind::YamlAppend | CallKind::YamlRemove => edit_yaml(call.kind, &args),
        CallKind::DockerImage => docker_image(context, &args).await,
        CallKind::DockerRun => docker_run(context, &args).await,
        CallKind::DockerExec => docker_exec(context, &args).await,
        CallKind::DockerStart | CallKind::DockerStop | CallKind::DockerRestart | CallKind::DockerRemoveContainer => docker_container(context, call.kind, &args).await,
        CallKind::DockerRemoveImage => docker_remove_image(context, &args).await,
        CallKind::DockerLogs => docker_logs(context, &args).await,
        CallKind::ComposeUp | CallKind::ComposeRestart | CallKind::ComposeStop | CallKind::ComposeRm => run_compose(context, call.kind, &args).await,
        CallKind::Http => http_action(context, call, scope).await,
        CallKind::WaitUntil => wait_until(context, call, scope).await,
        CallKind::Query | CallKind::Command | CallKind::FileCheck | CallKind::YamlCheck | CallKind::Container => Err(format!("`{}` is a probe, not an action", call.schema().name)),
    }
}

/// Connects to a named PostgreSQL connection of the runbook.
pub async fn connect_postgres(context: &Context, name: &str, scope: &Scope) -> Result<tokio_postgres::Client, String> {
    connect_postgres_as(context, name, scope, None).await
}

/// Connects like [`connect_postgres`], with an `application_name` that tags the session.
async fn connect_postgres_as(context: &Context, name: &str, scope: &Scope, application_name: Option<&str>) -> Result<tokio_postgres::Client, String> {
    let connection = context.loaded.runbook.connection(crate::model::ConnectionKind::Postgres, name).ok_or_else(|| format!("unknown postgres connection `{name}`"))?;
    let render = |arg: &str| -> Result<Option<String>, String> {
        connection.args.get(arg).map(|expr| scope.render_text(expr, crate::schema::ArgType::Text, crate::interpolate::Mode::Execute)).transpose().map_err(|error| format!("postgres connection `{name}`, `{arg}`: {error}"))
    };

    let target = match render("url")? {
        Some(url) => postgres::PgTarget::Url(url),
        None => postgres::PgTarget::Container {
            container: render("container")?.unwrap_or_default(),
            network: render("network")?,
            port: render("port")?.and_then(|port| port.parse().ok()).unwrap_or(postgres::DEFAULT_PORT),
            user: render("user")?.unwrap_or_default(),
            database: render("database")?.unwrap_or_default(),
            password: render("password")?,
        },
    };
    let docker_connection = match connection.args.get("docker").map(|expr| &expr.kind) {
        Some(crate::syntax::ExprKind::Reference(reference)) => reference.segments.last().map(|segment| segment.name.clone()),
        _ => None,
    };
    let docker = match &target {
        postgres::PgTarget::Container { .. } => Some(context.docker_named(docker_connection.as_deref()).await?),
        postgres::PgTarget::Url(_) => None,
    };
    postgres::connect_as(name, &target, docker.as_ref(), application_name).await.map_err(|error| error.to_string())
}

/// Returns the `application_name` that tags the SQL sessions of a step.
fn session_tag(context: &Context, step: &str) -> String {
    let marker = context.step_marker(step);
    format!("rb6-{}", marker.split('/').next().unwrap_or_default())
}

async fn run_sql(context: &Context, step: &str, args: &Args<'_>) -> Result<ActionOutput, String> {
    let connection = args.connection("connection").ok_or("missing connection")?;
    let statements = postgres::split_statements(&args.sql("statements")?);
    let client = connect_postgres_as(context, &connection, args.scope, Some(&session_tag(context, step))).await?;
    postgres::execute(&client, &statements).await.map_err(|error| error.to_string())?;
    Ok(ActionOutput::stdout(format!("{} statement(s) executed", statements.len())))
}

/// Builds a shell spec from `run`, `cwd`, `env` and `expect_exit`.
pub fn shell_spec(args: &Args<'_>) -> Result<shell::ShellSpec, String> {
    let mut spec = shell::ShellSpec::new(args.shell("run")?);
    spec.cwd = Some(match args.text_opt("cwd")? {
        Some(cwd) => PathBuf::from(cwd),
        None => PathBuf::from(&args.scope.runbook_dir),
    });
    spec.env = args.map("env")?;
    let expected: Vec<i32> = args.integers("expect_exit").into_iter().map(|code| code as i32).collect();
    if !expected.is_empty() {
        spec.expect_exit = expected;
    }
    Ok(spec)
}

async fn run_shell(context: &Context, step: &str, args: &Args<'_>) -> Result<ActionOutput, String> {
    let mut spec = shell_spec(args)?;
    spec.env.push((crate::execute::leftovers::MARKER_VARIABLE.to_string(), context.step_marker(step)));
    let outcome = shell::run(&spec, |_, line| context.reporter.step_output(step, line)).await.map_err(|error| error.to_string())?;
    Ok(ActionOutput::stdout(outcome.stdout))
}

fn owner(args: &Args<'_>) -> Result<Option<file::Owner>, String> {
    let user = args.text_opt("owner")?.map(|user| file::Principal::parse(&user));
    let group = args.text_opt("group")?.map(|group| file::Principal::parse(&group));
    Ok((user.is_some() || group.is_some()).then_some(file::Owner { user, group }))
}

fn change_output(change: file::FileChange) -> Result<ActionOutput, String> {
    Ok(ActionOutput::undo(json!({ "file": serde_json::to_value(change).map_err(|error| error.to_string())? })))
}

fn write_file(args: &Args<'_>) -> Result<ActionOutput, String> {
    let path = PathBuf::from(args.text("path")?);
    let change = file::write_file(&path, args.text("content")?.as_bytes(), args.mode("mode"), owner(args)?.as_ref()).map_err(|error| error.to_string())?;
    change_output(change)
}

fn copy_file(args: &Args<'_>) -> Result<ActionOutput, String> {
    let change = file::copy_file(Path::new(&args.text("source")?), Path::new(&args.text("destination")?), args.mode("mode"), owner(args)?.as_ref()).map_err(|error| error.to_string())?;
    change_output(change)
}

fn create_directory(args: &Args<'_>) -> Result<ActionOutput, String> {
    let change = file::create_dir(Path::new(&args.text("path")?), args.mode("mode"), owner(args)?.as_ref()).map_err(|error| error.to_string())?;
    change_output(change)
}

fn remove_directory(args: &Args<'_>) -> Result<ActionOutput, String> {
    file::remove_dir(Path::new(&args.text("path")?)).map_err(|error| error.to_string())?;
    Ok(ActionOutput::default())
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|error| format!("can't read {}: {error}", path.display()))
}

fn edit_block(args: &Args<'_>) -> Result<ActionOutput, String> {
    let path = PathBuf::from(args.text("path")?);
    let mut markers = file::BlockMarkers::new(args.text("marker")?);
    if let Some(comment) = args.text_opt("comment")? {
        markers.comment = comment;
    }
    let position = match (args.text_opt("after")?, args.text_opt("before")?) {
        (Some(pattern), _) => file::BlockPosition::AfterRegex(regex::Regex::new(&pattern).map_err(|error| format!("invalid `after` pattern: {error}"))?),
        (None, Some(pattern)) => file::BlockPosition::BeforeRegex(regex::Regex::new(&pattern).map_err(|error| format!("invalid `before` pattern: {error}"))?),
        (None, None) => file::BlockPosition::End,
    };

    let text = read_text(&path)?;
    let edited = file::insert_block(&text, &markers, &args.text("content")?, &position).map_err(|error| error.to_string())?;
    let change = file::write_file(&path, edited.as_bytes(), None, None).map_err(|error| error.to_string())?;
    change_output(change)
}

fn edit_yaml(kind: CallKind, args: &Args<'_>) -> Result<ActionOutput, String> {
    let path = PathBuf::from(args.text("file")?);
    let mut text = read_text(&path)?;
    let key_path = |text: &str| text.parse::<yaml::KeyPath>().map_err(|error| error.to_string());

    match kind {
        CallKind::YamlSet => {
            for (key, value) in args.value_entries("values")? {
                text = yaml::set(&text, &key_path(&key)?, &value).map_err(|error| format!("{}: {error}", path.display()))?;
            }
        }
        CallKind::YamlAppend => {
            let key = key_path(&args.text("key")?)?;
            for item in value_list(args.value("items")?) {
                text = yaml::append(&text, &key, &item).map_err(|error| format!("{}: {error}", path.display()))?;
            }
        }
        _ => {
            let key = key_path(&args.text("key")?)?;
            text = match args.value("items")? {
                Some(items) => yaml::remove_items(&text, &key, &value_list(Some(items)), args.boolean("remove_if_empty").unwrap_or(false)),
                None => yaml::remove(&text, &key),
            }
            .map_err(|error| format!("{}: {error}", path.display()))?;
        }
    }

    let change = file::write_file(&path, text.as_bytes(), None, None).map_err(|error| error.to_string())?;
    change_output(change)
}

fn value_list(value: Option<serde_json::Value>) -> Vec<serde_json::Value> {
    match value {
        Some(serde_json::Value::Array(items)) => items,
        Some(other) => vec![other],
        None => Vec::new(),
    }
}

async fn docker_image(context: &Context, args: &Args<'_>) -> Result<ActionOutput, String> {
    let image = args.text("image")?;
    let docker = docker_for(context, args).await?;
    if docker.image_exists(&image).await.map_err(|error| error.to_string())? {
        return Ok(ActionOutput::stdout(format!("image {image} is present")));
    }
    if !args.boolean("pull").unwrap_or(false) {
        return Err(format!("image {image} is not present on the Docker engine; pull or load it first (docker pull {image}), or set `pull = true`"));
    }
    docker.pull_image(&image).await.map_err(|error| error.to_string())?;
    Ok(ActionOutput::stdout(format!("pulled image {image}")))
}

/// Returns the Docker client of the call's `connection` argument, or of the default engine.
pub async fn docker_for(context: &Context, args: &Args<'_>) -> Result<docker::DockerClient, String> {
    context.docker_named(args.connection("connection").as_deref()).await
}

async fn docker_run(context: &Context, args: &Args<'_>) -> Result<ActionOutput, String> {
    let spec = docker::RunSpec {
        image: args.text("image")?,
        command: args.list("command")?,
        env: args.map("env")?,
        binds: args.list("volumes")?,
        network: args.text_opt("network")?,
        user: args.text_opt("user")?,
        name: args.text_opt("name")?,
        working_dir: args.text_opt("workdir")?,
        timeout: DOCKER_RUN_TIMEOUT,
    };
    let output = docker_for(context, args).await?.run_once(&spec).await.map_err(|error| error.to_string())?;
    check_exit(&format!("container from {}", spec.image), output.exit_code, &args.integers("expect_exit"), &output.stderr)?;
    Ok(ActionOutput::stdout(output.stdout))
}

async fn docker_exec(context: &Context, args: &Args<'_>) -> Result<ActionOutput, String> {
    let container = args.text("container")?;
    let user = args.text_opt("user")?;
    let output = docker_for(context, args).await?.exec(&container, &args.list("command")?, &args.map("env")?, user.as_deref()).await.map_err(|error| error.to_string())?;
    check_exit(&format!("exec in {container}"), output.exit_code, &args.integers("expect_exit"), &output.stderr)?;
    Ok(ActionOutput::stdout(output.stdout))
}

/// Maximum wait for the SQL session of an interrupted attempt to end.
const SQL_LEFTOVER_WAIT: Duration = Duration::from_secs(300);

/// Cleans up what an interrupted attempt of an action can leave behind. For `docker_run` that
/// is its named one-shot container. For `sql` it is the server session, because the server goes
/// on running the statement (a CREATE DATABASE, say) after rb6 was killed.
pub async fn clean_up_interrupted(context: &Context, step: &str, call: &Call, scope: &Scope) {
    match call.kind {
        CallKind::DockerRun => remove_leftover_container(context, call, scope).await,
        CallKind::Sql => wait_for_leftover_session(context, step, call, scope).await,
        _ => {}
    }
}

async fn wait_for_leftover_session(context: &Context, step: &str, call: &Call, scope: &Scope) {
    let args = Args::new(call, scope);
    let Some(connection) = args.connection("connection") else { return };
    let Ok(client) = connect_postgres(context, &connection, scope).await else { return };
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = {} AND pid <> pg_backend_pid()",
        crate::interpolate::quote_sql_literal(&session_tag(context, step))
    );

    let started = std::time::Instant::now();
    let mut reported = false;
    while started.elapsed() < SQL_LEFTOVER_WAIT {
        let busy = postgres::query(&client, &sql).await.ok().and_then(|rows| rows.first()?.first()?.clone()).is_some_and(|count| count != "0");
        if !busy {
            return;
        }
        if !reported {
            context.reporter.line(&format!("waiting for the SQL session of the interrupted run of \"{step}\" to finish"));
            reported = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn remove_leftover_container(context: &Context, call: &Call, scope: &Scope) {
    let args = Args::new(call, scope);
    let Ok(Some(name)) = args.text_opt("name") else { return };
    let Ok(docker) = docker_for(context, &args).await else { return };
    match docker.remove_container(&name, true).await {
        Ok(true) => context.reporter.line(&format!("removed container {name} left by the interrupted run")),
        Ok(false) => {}
        Err(error) => tracing::warn!(container = %name, %error, "could not remove the container of an interrupted run"),
    }
}

/// Fails unless the exit code is expected (default: 0).
pub fn check_exit(what: &str, code: i64, expected: &[i64], stderr: &str) -> Result<(), String> {
    let accepted = if expected.is_empty() { &[0][..] } else { expected };
    if accepted.contains(&code) {
        return Ok(());
    }
    let last_lines: Vec<&str> = stderr.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
    Err(format!("{what} exited with code {code} (expected {accepted:?}); stderr:\n{}", last_lines.join("\n")))
}

async fn docker_container(context: &Context, kind: CallKind, args: &Args<'_>) -> Result<ActionOutput, String> {
    let container = args.text("container")?;
    let docker = docker_for(context, args).await?;
    let timeout = args.duration("timeout").unwrap_or(DOCKER_STOP_TIMEOUT);
    let result = match kind {
        CallKind::DockerStart => docker.start(&container).await,
        CallKind::DockerStop => docker.stop(&container, timeout).await,
        CallKind::DockerRestart => docker.restart(&container, timeout).await,
        _ => docker.remove_container(&container, args.boolean("force").unwrap_or(false)).await.map(|_| ()),
    };
    result.map_err(|error| error.to_string())?;
    Ok(ActionOutput::default())
}

async fn docker_remove_image(context: &Context, args: &Args<'_>) -> Result<ActionOutput, String> {
    let image = args.text("image")?;
    let removed = docker_for(context, args).await?.remove_image(&image, args.boolean("force").unwrap_or(false)).await.map_err(|error| error.to_string())?;
    Ok(ActionOutput::stdout(if removed { format!("removed image {image}") } else { format!("image {image} was already absent") }))
}

async fn docker_logs(context: &Context, args: &Args<'_>) -> Result<ActionOutput, String> {
    let container = args.text("container")?;
    let lines = args.integer("tail").unwrap_or(50).max(1) as usize;
    let logs = docker_for(context, args).await?.logs_tail(&container, lines).await.map_err(|error| error.to_string())?;
    Ok(ActionOutput::stdout(logs))
}

async fn run_compose(context: &Context, kind: CallKind, args: &Args<'_>) -> Result<ActionOutput, String> {
    let project_dir = PathBuf::from(args.text("project_dir")?);
    let service = args.text("service")?;
    let tool = context.compose().await?;
    let output = match kind {
        CallKind::ComposeUp => tool.up(&project_dir, &service).await,
        CallKind::ComposeRestart => tool.restart(&project_dir, &service).await,
        CallKind::ComposeStop => tool.stop(&project_dir, &service).await,
        _ => compose_remove(tool, &project_dir, &service).await,
    }
    .map_err(|error| error.to_string())?;

    let undo = if kind == CallKind::ComposeUp { json!({ "compose": { "project_dir": project_dir, "service": service } }) } else { serde_json::Value::Null };
    Ok(ActionOutput { stdout: format!("{}{}", output.stdout, output.stderr), undo })
}

/// Stops and removes one compose service's container (`stop` then `rm -f`).
pub async fn compose_remove(tool: &compose::ComposeTool, project_dir: &Path, service: &str) -> Result<compose::ComposeOutput, compose::ComposeError> {
    let stopped = tool.stop(project_dir, service).await?;
    let removed = tool.rm(project_dir, service).await?;
    Ok(compose::ComposeOutput { stdout: stopped.stdout + &removed.stdout, stderr: stopped.stderr + &removed.stderr })
}

async fn http_action(context: &Context, call: &Call, scope: &Scope) -> Result<ActionOutput, String> {
    let result = probe::evaluate(context, call, scope).await;
    if result.passed {
        return Ok(ActionOutput::stdout(result.lines.join("\n")));
    }
    Err(format!("HTTP request did not meet its conditions:\n{}", result.lines.join("\n")))
}

async fn wait_until(context: &Context, call: &Call, scope: &Scope) -> Result<ActionOutput, String> {
    let result = probe::evaluate(context, call, scope).await;
    if result.passed {
        Ok(ActionOutput::stdout(result.lines.join("\n")))
    } else {
        Err(result.lines.join("\n"))
    }
}
