//! Captures: values read after a step's action that later steps use as `capture.NAME`.

use std::collections::BTreeMap;

use super::perform::ActionOutput;
use super::{shell, yaml};
use crate::execute::Context;
use crate::interpolate::{value_text, Mode, Scope};
use crate::model::{CaptureSource, Step};
use crate::schema::ArgType;

/// Reads every capture of a step after its action ran (or its check passed).
pub async fn read_all(context: &Context, step: &Step, output: &ActionOutput, scope: &Scope) -> Result<BTreeMap<String, String>, String> {
    let mut captures = BTreeMap::new();
    for capture in &step.captures {
        let value = read_one(&capture.source, output, scope).await.map_err(|error| format!("capture `{}`: {error}", capture.name))?;
        if capture.sensitive {
            context.reporter.add_secrets([&value]);
        }
        captures.insert(capture.name.clone(), value);
    }
    Ok(captures)
}

async fn read_one(source: &CaptureSource, output: &ActionOutput, scope: &Scope) -> Result<String, String> {
    let render = |template| scope.render(template, ArgType::Text, Mode::Execute).map_err(|error| error.to_string());
    match source {
        CaptureSource::YamlKey { file, key } => {
            let (file, key) = (render(file)?, render(key)?);
            let text = std::fs::read_to_string(&file).map_err(|error| format!("can't read {file}: {error}"))?;
            let path: yaml::KeyPath = key.parse().map_err(|error: yaml::YamlEditError| error.to_string())?;
            let value = yaml::get(&text, &path).map_err(|error| error.to_string())?;
            value.map(|value| value_text(&value)).ok_or_else(|| format!("key {key} not found in {file}"))
        }
        CaptureSource::File(file) => {
            let file = render(file)?;
            std::fs::read_to_string(&file).map(|text| text.trim().to_string()).map_err(|error| format!("can't read {file}: {error}"))
        }
        CaptureSource::Stdout => Ok(output.stdout.trim().to_string()),
        CaptureSource::Command(command) => {
            let script = scope.render(command, ArgType::Shell, Mode::Execute).map_err(|error| error.to_string())?;
            let mut spec = shell::ShellSpec::new(script);
            spec.cwd = Some(std::path::PathBuf::from(&scope.runbook_dir));
            let outcome = shell::run(&spec, |_, _| {}).await.map_err(|error| error.to_string())?;
            Ok(outcome.stdout.trim().to_string())
        }
    }
}
