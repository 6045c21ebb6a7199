//! Checks action, probe and evidence blocks against their schemas.

use std::collections::BTreeMap;

use crate::model::Call;
use crate::schema::{self, Role, Schema};
use crate::syntax::Block;

use super::{did_you_mean, Resolver};

impl Resolver<'_> {
    /// Resolves a block used in `role`; reports every problem and returns `None` on any error.
    pub fn resolve_call(&mut self, block: &Block, role: Role) -> Option<Call> {
        let schema = self.call_schema(block, role)?;
        let errors_before = self.problems.error_count();

        if let Some(label) = block.labels.first() {
            self.error(label.span.clone(), format!("`{}` takes no label", schema.name), "unexpected label");
        }

        let args = self.call_args(block, schema);
        let nested = self.nested_probe(block, schema);
        self.missing_args(block, schema, &args);

        if self.problems.error_count() > errors_before {
            return None;
        }
        Some(Call { kind: schema.kind, args, nested: nested.map(Box::new), span: block.span.clone() })
    }

    fn call_schema(&mut self, block: &Block, role: Role) -> Option<&'static Schema> {
        let name = block.kind.name.as_str();
        let allowed = schema::names_for(role);
        match schema::find(name) {
            Some(schema) if schema.roles.contains(&role) => Some(schema),
            Some(schema) => {
                let roles: Vec<&str> = schema.roles.iter().map(|role| role_name(*role)).collect();
                self.error(block.kind.span.clone(), format!("`{name}` can't be used as {}", role_name(role)), format!("`{name}` is {}", roles.join(" or ")))
                    .help = Some(format!("expected one of: {}", allowed.join(", ")));
                None
            }
            None => {
                let help = match did_you_mean(name, allowed.iter().copied()) {
                    Some(suggestion) => format!("did you mean `{suggestion}`?"),
                    None => format!("expected one of: {}", allowed.join(", ")),
                };
                self.error(block.kind.span.clone(), format!("unknown {} `{name}`", role_name(role).trim_start_matches("an ").trim_start_matches("a ")), "unknown block").help = Some(help);
                None
            }
        }
    }

    fn call_args(&mut self, block: &Block, schema: &'static Schema) -> BTreeMap<String, crate::syntax::Expr> {
        let mut args = BTreeMap::new();
        for attribute in &block.body.attributes {
            let name = attribute.name.name.as_str();
            let Some(spec) = schema.arg(name) else {
                let names: Vec<&str> = schema.args.iter().map(|spec| spec.name).collect();
                let help = match did_you_mean(name, names.iter().copied()) {
                    Some(suggestion) => format!("did you mean `{suggestion}`?"),
                    None => format!("`{}` takes: {}", schema.name, names.join(", ")),
                };
                self.error(attribute.name.span.clone(), format!("unknown argument `{name}` for `{}`", schema.name), "unknown argument").help = Some(help);
                continue;
            };
            if args.contains_key(name) {
                self.error(attribute.name.span.clone(), format!("duplicate argument `{name}`"), "set again here");
                continue;
            }
            self.check_value(&attribute.value, spec.ty, name);
            args.insert(name.to_string(), attribute.value.clone());
        }
        args
    }

    fn nested_probe(&mut self, block: &Block, schema: &'static Schema) -> Option<Call> {
        if !schema.nested_probe {
            self.no_blocks(&block.body, schema.name);
            return None;
        }
        match block.body.blocks.as_slice() {
            [probe] => self.resolve_call(probe, Role::Probe),
            [] => {
                self.error(block.kind.span.clone(), format!("`{}` needs one probe block", schema.name), "missing probe")
                    .help = Some(format!("put one of these inside: {}", schema::names_for(Role::Probe).join(", ")));
                None
            }
            [_, extra, ..] => {
                self.error(extra.kind.span.clone(), format!("`{}` takes exactly one probe block", schema.name), "second probe");
                None
            }
        }
    }

    fn missing_args(&mut self, block: &Block, schema: &'static Schema, args: &BTreeMap<String, crate::syntax::Expr>) {
        for spec in schema.args.iter().filter(|spec| spec.required) {
            if !args.contains_key(spec.name) && block.body.attribute(spec.name).is_none() {
                self.error(block.kind.span.clone(), format!("missing argument `{}` for `{}`", spec.name, schema.name), format!("`{}` is required: {}", spec.name, spec.ty.describe()));
            }
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Action => "an action",
        Role::Probe => "a probe",
        Role::Evidence => "on_fail evidence",
    }
}
