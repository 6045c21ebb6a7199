//! `rb6 doctor`: reports whether Docker, the compose tool and the runbook's PostgreSQL
//! connections are reachable, with their versions.

use std::path::Path;

use rb6::actions::compose::ComposeTool;
use rb6::actions::docker::DockerClient;
use rb6::execute::Context;
use rb6::interpolate::Scope;
use rb6::model::ConnectionKind;
use rb6::report::Reporter;
use rb6::state::records::State;

use super::commands::{load, variable_values, EXIT_ERROR, EXIT_OK};
use super::VariableArgs;

/// Checks each engine and prints one line per check; exit 1 when any is unreachable.
pub fn doctor(file: Option<&Path>, variables: &VariableArgs, reporter: &Reporter) -> Result<u8, u8> {
    let loaded = match file {
        Some(file) => Some(load(file, reporter)?),
        None => None,
    };
    let values = match &loaded {
        Some(loaded) => Some(variable_values(loaded, variables, reporter)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|_| EXIT_ERROR)?;

    let healthy = runtime.block_on(async {
        let mut healthy = true;
        reporter.print(&format!("rb6 {}\n", env!("CARGO_PKG_VERSION")));

        match DockerClient::connect(None).await {
            Ok(client) => match client.version().await {
                Ok(version) => reporter.print(&format!("ok    docker: Engine {} (API {}, negotiated {})\n", version.version, version.api_version, version.client_api_version)),
                Err(error) => {
                    healthy = false;
                    reporter.print(&format!("FAIL  docker: {error}\n"));
                }
            },
            Err(error) => {
                healthy = false;
                reporter.print(&format!("FAIL  docker: {error}\n"));
            }
        }

        match ComposeTool::detect().await {
            Ok(tool) => reporter.print(&format!("ok    compose: {}\n", tool.describe())),
            Err(error) => {
                healthy = false;
                reporter.print(&format!("FAIL  compose: {error}\n"));
            }
        }

        if let (Some(loaded), Some(values)) = (loaded, values) {
            let scope = Scope::new(&loaded.runbook, values, &State::default());
            let connections: Vec<String> = loaded.runbook.connections.iter().filter(|c| c.kind == ConnectionKind::Postgres).map(|c| c.name.clone()).collect();
            let context = Context::read_only(loaded, scope.clone(), State::default(), reporter.clone());
            if let Err(error) = context.prepare_secrets() {
                reporter.print(&format!("FAIL  secrets: {error}\n"));
            }
            let scope = context.scope();
            for name in connections {
                healthy &= check_postgres(&context, &name, &scope, reporter).await;
            }
        }
        healthy
    });
    Ok(if healthy { EXIT_OK } else { EXIT_ERROR })
}

async fn check_postgres(context: &Context, name: &str, scope: &Scope, reporter: &Reporter) -> bool {
    let result = async {
        let client = rb6::actions::connect_postgres(context, name, scope).await?;
        let rows = rb6::actions::postgres::query(&client, "SHOW server_version").await.map_err(|error| error.to_string())?;
        Ok::<String, String>(rows.first().and_then(|row| row.first().cloned().flatten()).unwrap_or_default())
    }
    .await;
    match result {
        Ok(version) => {
            reporter.print(&format!("ok    postgres.{name}: PostgreSQL {version}\n"));
            true
        }
        Err(error) => {
            reporter.print(&format!("FAIL  postgres.{name}: {error}\n"));
            false
        }
    }
}
