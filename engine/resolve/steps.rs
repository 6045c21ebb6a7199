//! Resolves `step`, `gate` and `manual` blocks: needs, the action, checks, undo and captures.

use std::time::Duration;

use crate::model::{Call, Capture, CaptureSource, ExplicitUndo, Need, Step, StepKind, Undo, UndoOrder};
use crate::schema::{self, Inverse, Role};
use crate::syntax::{Block, Expr, ExprKind};

use super::{did_you_mean, AttributeReader, NameRegistry, Resolver};

const STEP_ATTRIBUTES: &[&str] = &["description", "needs", "timeout", "retries", "retry_delay"];
const MANUAL_ATTRIBUTES: &[&str] = &["description", "needs", "instructions"];

impl Resolver<'_> {
    /// Resolves one step, gate or manual step.
    pub fn resolve_step(&mut self, block: &Block, seen: &mut NameRegistry) -> Option<Step> {
        let kind = match block.kind.name.as_str() {
            "gate" => StepKind::Gate,
            "manual" => StepKind::Manual,
            _ => StepKind::Step,
        };
        let (name, name_span) = self.single_label(block, &format!("{} name", kind.keyword()))?;
        self.register(seen, kind.keyword(), &name, &name_span);

        let allowed = if kind == StepKind::Manual { MANUAL_ATTRIBUTES } else { STEP_ATTRIBUTES };
        let mut attributes = AttributeReader::new(self, &block.body, kind.keyword(), allowed);
        let description = attributes.literal_text("description");
        let timeout = attributes.duration("timeout");
        let retries = attributes.integer("retries").unwrap_or(0).clamp(0, 1000) as u32;
        let retry_delay = attributes.duration("retry_delay").unwrap_or(Duration::from_secs(2));
        let instructions = attributes.template("instructions");
        let needs_expr = attributes.take("needs");
        attributes.finish();

        let needs = needs_expr.map(|expr| self.resolve_needs(expr)).unwrap_or_default();
        let mut step = Step {
            name,
            kind,
            description,
            needs,
            action: None,
            checks: Vec::new(),
            undo: Undo::NoEffect,
            timeout,
            retries,
            retry_delay,
            captures: Vec::new(),
            on_fail: Vec::new(),
            instructions,
            span: block.span.clone(),
            name_span,
        };
        self.resolve_step_blocks(block, &mut step, seen);
        self.check_step_shape(block, &mut step);
        Some(step)
    }

    fn resolve_needs(&mut self, expr: &Expr) -> Vec<Need> {
        let ExprKind::List(items) = &expr.kind else {
            self.error(expr.span.clone(), "invalid value for `needs`: expected a list of step names", "not a list").help = Some("needs = [create_role, create_database]".into());
            return Vec::new();
        };

        let mut needs = Vec::new();
        for item in items {
            let name = match &item.kind {
                ExprKind::Reference(reference) if reference.segments.len() == 1 => reference.segments[0].name.clone(),
                ExprKind::Template(template) if template.as_literal().is_some() => template.as_literal().expect("checked literal"),
                _ => {
                    self.error(item.span.clone(), "invalid entry in `needs`: expected a step name", "not a step name");
                    continue;
                }
            };
            if !self.declared.steps.contains(&name) {
                let suggestion = did_you_mean(&name, self.declared.steps.iter().map(String::as_str)).map(str::to_string);
                let problem = self.error(item.span.clone(), format!("unknown step `{name}` in needs"), "no step, gate or manual step has this name");
                if let Some(suggestion) = suggestion {
                    problem.help = Some(format!("did you mean `{suggestion}`?"));
                }
                continue;
            }
            needs.push(Need { name, span: item.span.clone() });
        }
        needs
    }

    fn resolve_step_blocks(&mut self, block: &Block, step: &mut Step, seen: &mut NameRegistry) {
        let mut undo_block = None;
        for inner in &block.body.blocks {
            match inner.kind.name.as_str() {
                "check" => step.checks.extend(self.resolve_probes(inner)),
                "undo" if step.kind == StepKind::Step => undo_block = Some(inner),
                "capture" if step.kind == StepKind::Step => {
                    if let Some(capture) = self.resolve_capture(inner, seen) {
                        step.captures.push(capture);
                    }
                }
                "on_fail" if step.kind == StepKind::Gate => step.on_fail = self.resolve_evidence(inner),
                _ if step.kind == StepKind::Gate => {
                    if let Some(probe) = self.resolve_call(inner, Role::Probe) {
                        step.checks.push(probe);
                    }
                }
                _ if step.kind == StepKind::Step => self.resolve_action_block(inner, step),
                other => {
                    self.error(inner.kind.span.clone(), format!("unexpected block `{other}` in a manual step"), "not allowed here")
                        .help = Some("a manual step has `instructions`, `needs`, `description` and optionally `check`".into());
                }
            }
        }
        step.undo = self.resolve_undo(undo_block, step);
    }

    fn resolve_action_block(&mut self, inner: &Block, step: &mut Step) {
        let Some(call) = self.resolve_call(inner, Role::Action) else { return };
        if let Some(first) = &step.action {
            let first = first.span.clone();
            self.error(inner.kind.span.clone(), format!("step `{}` has more than one action", step.name), "second action")
                .with_label_ref(first, "first action")
                .help = Some("split the work into two steps, the second with `needs = [...]`".into());
            return;
        }
        step.action = Some(call);
    }

    fn check_step_shape(&mut self, block: &Block, step: &mut Step) {
        match step.kind {
            StepKind::Step if step.action.is_none() => {
                // Any other block was resolved as an action and reported if unknown or invalid.
                let has_action_block = block.body.blocks.iter().any(|inner| !matches!(inner.kind.name.as_str(), "check" | "undo" | "capture"));
                if !has_action_block {
                    self.error(block.kind.span.clone(), format!("step `{}` has no action", step.name), "expected an action block inside")
                        .help = Some(format!("actions: {}", schema::names_for(Role::Action).join(", ")));
                }
            }
            StepKind::Gate if step.checks.is_empty() && !block.body.blocks.iter().any(|inner| inner.kind.name != "on_fail") => {
                self.error(block.kind.span.clone(), format!("gate `{}` has no probe", step.name), "expected a probe block inside")
                    .help = Some(format!("probes: {}", schema::names_for(Role::Probe).join(", ")));
            }
            StepKind::Manual if step.instructions.is_none() => {
                self.error(block.kind.span.clone(), format!("manual step `{}` has no instructions", step.name), "missing `instructions`");
            }
            _ => {}
        }
    }

    fn resolve_probes(&mut self, block: &Block) -> Vec<Call> {
        self.block_has_no_attributes(block);
        let probes: Vec<Call> = block.body.blocks.iter().filter_map(|inner| self.resolve_call(inner, Role::Probe)).collect();
        if block.body.blocks.is_empty() {
            self.error(block.kind.span.clone(), format!("`{}` needs at least one probe block", block.kind.name), "empty");
        }
        probes
    }

    fn resolve_evidence(&mut self, block: &Block) -> Vec<Call> {
        self.block_has_no_attributes(block);
        block.body.blocks.iter().filter_map(|inner| self.resolve_call(inner, Role::Evidence)).collect()
    }

    fn block_has_no_attributes(&mut self, block: &Block) {
        for attribute in &block.body.attributes {
            self.error(attribute.name.span.clone(), format!("unexpected attribute `{}` in `{}`", attribute.name.name, block.kind.name), "only blocks go here");
        }
    }

    fn resolve_undo(&mut self, block: Option<&Block>, step: &Step) -> Undo {
        let Some(block) = block else { return self.implicit_undo(step) };

        let mut attributes = AttributeReader::new(self, &block.body, "undo", &["none", "order"]);
        let reason = attributes.literal_text("none");
        let order_text = attributes.literal_text("order");
        let order_span = attributes.take("order").map(|expr| expr.span.clone());
        attributes.finish();

        let order = match order_text.as_deref() {
            None | Some("before_needs") => UndoOrder::BeforeNeeds,
            Some("after_needs") => UndoOrder::AfterNeeds,
            Some(other) => {
                self.error(order_span.unwrap_or(block.kind.span.clone()), format!("invalid undo order \"{other}\""), "expected \"before_needs\" or \"after_needs\"");
                UndoOrder::BeforeNeeds
            }
        };

        let mut action: Option<Call> = None;
        let mut only_if = Vec::new();
        for inner in &block.body.blocks {
            if inner.kind.name == "only_if" {
                only_if.extend(self.resolve_probes(inner));
            } else if let Some(call) = self.resolve_call(inner, Role::Action) {
                if action.is_some() {
                    self.error(inner.kind.span.clone(), "an undo has one action", "second action");
                } else {
                    action = Some(call);
                }
            }
        }

        match (reason, action) {
            (Some(reason), None) => Undo::LeftInPlace { reason },
            (None, Some(action)) => Undo::Explicit(ExplicitUndo { action, only_if, order, span: block.span.clone() }),
            (Some(_), Some(_)) => {
                self.error(block.kind.span.clone(), "an undo has either an action or `none`, not both", "both given");
                Undo::Missing
            }
            (None, None) => {
                if block.body.blocks.iter().all(|inner| inner.kind.name == "only_if") {
                    self.error(block.kind.span.clone(), "an undo needs an action, or `none = \"reason\"`", "empty undo");
                }
                Undo::Missing
            }
        }
    }

    fn implicit_undo(&mut self, step: &Step) -> Undo {
        let Some(action) = &step.action else { return Undo::NoEffect };
        match action.schema().inverse {
            Inverse::Automatic => Undo::Automatic,
            Inverse::NoEffect => Undo::NoEffect,
            Inverse::Missing => {
                let name = action.schema().name;
                self.warning(step.name_span.clone(), format!("step `{}` has no undo: `{name}` can't be undone automatically", step.name), "no undo: left in place")
                    .help = Some("add `undo { ... }` with the inverse action, or `undo { none = \"why\" }` to leave it in place on purpose".into());
                Undo::Missing
            }
        }
    }

    fn resolve_capture(&mut self, block: &Block, seen: &mut NameRegistry) -> Option<Capture> {
        let (name, name_span) = self.single_label(block, "capture name")?;
        self.register(seen, "capture", &name, &name_span);
        let mut attributes = AttributeReader::new(self, &block.body, "capture", &["yaml_file", "key", "file", "stdout", "command", "sensitive"]);
        let yaml_file = attributes.template("yaml_file");
        let key = attributes.template("key");
        let file = attributes.template("file");
        let stdout = attributes.boolean("stdout").unwrap_or(false);
        let command = attributes.take("command").cloned();
        let sensitive = attributes.boolean("sensitive").unwrap_or(false);
        attributes.finish();
        self.no_blocks(&block.body, "capture");

        let command = command.and_then(|expr| match expr.kind {
            ExprKind::Template(template) => {
                self.check_template(&template, crate::schema::ArgType::Shell);
                Some(template)
            }
            _ => {
                self.error(expr.span.clone(), "invalid value for `command`: expected a string", "not a string");
                None
            }
        });

        let source = match (yaml_file, key, file, stdout, command) {
            (Some(file), Some(key), None, false, None) => CaptureSource::YamlKey { file, key },
            (None, None, Some(file), false, None) => CaptureSource::File(file),
            (None, None, None, true, None) => CaptureSource::Stdout,
            (None, None, None, false, Some(command)) => CaptureSource::Command(command),
            _ => {
                self.error(block.kind.span.clone(), format!("capture `{name}` needs exactly one source"), "invalid capture")
                    .help = Some("use `yaml_file` + `key`, `file`, `stdout = true`, or `command`".into());
                return None;
            }
        };
        Some(Capture { name, source, sensitive, span: block.span.clone() })
    }
}

impl crate::diagnostic::Problem {
    /// Adds a secondary label in place.
    pub fn with_label_ref(&mut self, span: crate::syntax::Span, label: &str) -> &mut Self {
        self.labels.push((span, label.to_string()));
        self
    }
}
