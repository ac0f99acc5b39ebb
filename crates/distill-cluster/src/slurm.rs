//! The steps as sbatch scripts, submitted one after the other with `--dependency=afterok:` on
//! the step before (an array job is done when all its tasks are), and
//! `--kill-on-invalid-dep=yes`, so a failed step cancels the steps after it instead of leaving
//! them pending.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{array_size, step_body, ClusterError, Plan, STEPS};

/// One sbatch script.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// `teacher`, `logits`, `students`, `report`.
    pub step: &'static str,
    pub path: PathBuf,
    pub text: String,
}

/// A submitted step and its job id.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub step: &'static str,
    pub job_id: String,
    /// The sbatch command line that submitted it.
    pub command: String,
}

fn jobs_dir(plan: &Plan) -> PathBuf {
    plan.out.join("jobs")
}

/// The four scripts, to be written under `<out>/jobs/`.
pub fn scripts(plan: &Plan) -> Vec<Script> {
    let dir = jobs_dir(plan);
    STEPS
        .iter()
        .enumerate()
        .map(|(n, &step)| {
            let array = array_size(plan, step);
            let log = dir.join("logs").join(if array.is_some() { format!("{step}-%A_%a.out") } else { format!("{step}-%j.out") });
            let mut text = String::from("#!/bin/sh\n");
            text += &format!("#SBATCH --job-name=distill-{}-{step}\n", plan.name);
            text += &format!("#SBATCH --output={}\n", log.display());
            text += &format!("#SBATCH --chdir={}\n", plan.workdir.display());
            if let Some(p) = &plan.partition {
                text += &format!("#SBATCH --partition={p}\n");
            }
            if let Some(n) = array {
                text += &format!("#SBATCH --array=0-{}\n", n.saturating_sub(1));
            }
            text += &format!("# distill `{}`: step {} of {} ({step}); written by `distill submit --slurm`.\nset -eu\n", plan.name, n + 1, STEPS.len());
            text += &step_body(plan, step, "SLURM_ARRAY_TASK_ID");
            Script { step, path: dir.join(format!("{}-{step}.sbatch", n + 1)), text }
        })
        .collect()
}

/// The sbatch command line of a script after the job `after` (a job id, or a shell variable
/// for `--dry-run`).
pub fn sbatch_args(script: &Path, after: Option<&str>) -> Vec<String> {
    let mut args = vec!["--parsable".to_string(), "--kill-on-invalid-dep=yes".to_string()];
    args.extend(after.map(|id| format!("--dependency=afterok:{id}")));
    args.push(script.display().to_string());
    args
}

/// What `--dry-run` prints: every script, then the commands that would submit them.
pub fn dry_run(plan: &Plan) -> String {
    let scripts = scripts(plan);
    let mut out = String::new();
    for s in &scripts {
        out += &format!("# ---- {} ----\n{}\n", s.path.display(), s.text);
    }
    out += "# ---- submitted as ----\n";
    let mut previous: Option<String> = None;
    for s in &scripts {
        let var = s.step.to_uppercase();
        out += &format!("{var}=$(sbatch {})\n", sbatch_args(&s.path, previous.as_deref()).join(" "));
        previous = Some(format!("${var}"));
    }
    out
}

/// Writes the scripts and submits them in order, each after the one before; the job ids. With
/// `wait`, the last (the report) is submitted with `sbatch --wait`, so this returns when it has
/// ended, and fails when it failed.
pub fn submit(plan: &Plan, wait: bool) -> Result<Vec<Submitted>, ClusterError> {
    let scripts = scripts(plan);
    let logs = jobs_dir(plan).join("logs");
    std::fs::create_dir_all(&logs).map_err(|source| ClusterError::Write { path: logs.clone(), source })?;
    for s in &scripts {
        std::fs::write(&s.path, &s.text).map_err(|source| ClusterError::Write { path: s.path.clone(), source })?;
    }
    let mut done: Vec<Submitted> = Vec::new();
    for s in &scripts {
        let mut args = sbatch_args(&s.path, done.last().map(|d| d.job_id.as_str()));
        if wait && s.step == "report" {
            args.insert(0, "--wait".into());
        }
        let output = Command::new("sbatch").args(&args).output().map_err(ClusterError::Sbatch)?;
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !output.status.success() || stdout.is_empty() {
            let message = format!("{}{}", String::from_utf8_lossy(&output.stderr).trim(), stdout);
            return Err(ClusterError::Rejected { script: s.path.clone(), message });
        }
        // `--parsable` prints `id` or `id;cluster`.
        let job_id = stdout.split(';').next().unwrap_or_default().to_string();
        done.push(Submitted { step: s.step, job_id, command: format!("sbatch {}", args.join(" ")) });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::plan;

    #[test]
    fn scripts_are_arrays_where_the_work_is_split_and_chained_with_afterok() {
        let scripts = scripts(&plan());
        assert_eq!(scripts.iter().map(|s| s.step).collect::<Vec<_>>(), ["teacher", "logits", "students", "report"]);
        assert!(scripts[1].text.contains("#SBATCH --array=0-3\n"), "{}", scripts[1].text);
        assert!(scripts[2].text.contains("#SBATCH --array=0-1\n"));
        assert!(!scripts[0].text.contains("--array") && !scripts[3].text.contains("--array"));
        assert!(scripts.iter().all(|s| s.text.contains("#SBATCH --partition=debug\n") && s.text.contains("#SBATCH --chdir=/shared\n")));
        assert!(scripts[3].text.contains("run '/shared/pipelines/digits sweep.yaml' --cache-dir /shared/cache --resume"));
        let dry = dry_run(&plan());
        assert!(
            dry.contains(
                "LOGITS=$(sbatch --parsable --kill-on-invalid-dep=yes --dependency=afterok:$TEACHER /shared/runs/digits-sweep/r1/jobs/2-logits.sbatch)"
            ),
            "{dry}"
        );
        assert!(dry.contains("TEACHER=$(sbatch --parsable --kill-on-invalid-dep=yes /shared/runs/digits-sweep/r1/jobs/1-teacher.sbatch)"), "{dry}");
    }
}
