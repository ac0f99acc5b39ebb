//! A distill recipe as the jobs of a cluster scheduler. distill has no scheduler of its own: a
//! submitted recipe is four steps of ordinary `distill` commands over one shared cache, which is
//! their only coordination (each artifact is computed once under its lock, and a task that is
//! run again continues from the cache and its checkpoints):
//!
//! 1. `teacher`: `distill logits PIPELINE --teacher-only` trains (or finds) the teacher;
//! 2. `logits`: an array of N tasks, `distill logits PIPELINE` (the shard from the scheduler's
//!    index), each one part of the teacher's logits;
//! 3. `students`: an array with one task per sweep point and seed, `distill run` of that point;
//! 4. `report`: `distill run PIPELINE`, which finds every model in the cache and evaluates,
//!    writing the run directory (for a sweep, its summary) as a local run does.
//!
//! [`slurm`] writes them as sbatch scripts chained with `--dependency=afterok:`; [`k8s`] prints
//! them as Kubernetes Indexed Jobs. Not here: what the commands do (the distill binary) or
//! loading the recipe (the binary builds the [`Plan`]).

pub mod k8s;
pub mod slurm;

use std::path::PathBuf;

/// One task of the students' array: the arguments it adds to `distill run` and the folder name
/// of its run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct StudentTask {
    /// `point-003-seed-1`.
    pub name: String,
    pub args: Vec<String>,
}

/// Everything the jobs need; paths are absolute (every node sees the same shared file system).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The recipe's name (job names).
    pub name: String,
    /// The distill binary as the nodes run it.
    pub distill: PathBuf,
    pub pipeline: PathBuf,
    /// The working directory of every task (relative paths in the recipe mean the same there).
    pub workdir: PathBuf,
    /// The shared cache.
    pub cache_dir: PathBuf,
    /// The user's `--set` values, given to every task.
    pub overrides: Vec<String>,
    /// Tasks of the logits array.
    pub shards: usize,
    pub students: Vec<StudentTask>,
    /// The final run directory; `jobs/` (scripts and logs) and `tasks/` (the students' runs)
    /// are made inside it.
    pub out: PathBuf,
    /// Slurm partition.
    pub partition: Option<String>,
}

/// The steps in order, as names; each depends on the one before.
pub const STEPS: [&str; 4] = ["teacher", "logits", "students", "report"];

/// One step's command as a POSIX shell script body: `index` is the variable that holds the
/// array index (`SLURM_ARRAY_TASK_ID`, `JOB_COMPLETION_INDEX`).
pub(crate) fn step_body(plan: &Plan, step: &str, index: &str) -> String {
    let base = |cmd: &str| {
        let mut words = vec![quote(&plan.distill.display().to_string()), cmd.to_string(), quote(&plan.pipeline.display().to_string())];
        words.extend(["--cache-dir".to_string(), quote(&plan.cache_dir.display().to_string())]);
        // A task run again continues its training jobs from their checkpoints.
        words.push("--resume".to_string());
        for o in &plan.overrides {
            words.extend(["--set".to_string(), quote(o)]);
        }
        words.join(" ")
    };
    match step {
        "teacher" => format!("exec {} --teacher-only\n", base("logits")),
        // Slurm's array gives index and count; a Kubernetes pod is told the count.
        "logits" => format!("exec {} --shards {}\n", base("logits"), plan.shards),
        "students" => {
            let mut out = format!("case \"${index}\" in\n");
            for (i, task) in plan.students.iter().enumerate() {
                let args: Vec<String> = task.args.iter().map(|a| quote(a)).collect();
                out += &format!("  {i}) set -- {}; task={} ;;\n", args.join(" "), quote(&task.name));
            }
            out += &format!("  *) echo \"no student task ${index}\" >&2; exit 2 ;;\nesac\n");
            let dir = plan.out.join("tasks").display().to_string();
            out += &format!("status=0\n{} \"$@\" --out {}/\"$task\" || status=$?\n", base("run"), quote(&dir));
            out += "# 3: the run finished but missed a target of the recipe; the report says so.\n";
            out += "[ \"$status\" -eq 0 ] || [ \"$status\" -eq 3 ] || exit \"$status\"\n";
            out
        }
        _ => format!("exec {} --out {}\n", base("run"), quote(&plan.out.display().to_string())),
    }
}

/// How many tasks a step's array has (`None`: not an array).
pub(crate) fn array_size(plan: &Plan, step: &str) -> Option<usize> {
    match step {
        "logits" => Some(plan.shards),
        "students" => Some(plan.students.len()),
        _ => None,
    }
}

/// A word for the shell: as it is when it is plain, else in single quotes.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,@+%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Why jobs could not be submitted.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot run `sbatch` (is Slurm installed, and this a submit host?)")]
    Sbatch(#[source] std::io::Error),
    #[error("sbatch {script} failed: {message}")]
    Rejected { script: PathBuf, message: String },
    #[error("cannot write the Kubernetes manifests")]
    Yaml(#[source] serde_yaml::Error),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn plan() -> Plan {
        Plan {
            name: "digits-sweep".into(),
            distill: "/opt/distill/bin/distill".into(),
            pipeline: "/shared/pipelines/digits sweep.yaml".into(),
            workdir: "/shared".into(),
            cache_dir: "/shared/cache".into(),
            overrides: vec!["student.train.epochs=3".into()],
            shards: 4,
            students: vec![
                StudentTask { name: "point-000-seed-1".into(), args: vec!["--set".into(), "student.model.hidden=[4]".into()] },
                StudentTask { name: "point-001-seed-1".into(), args: vec!["--set".into(), "student.model.hidden=[8, 8]".into()] },
            ],
            out: "/shared/runs/digits-sweep/r1".into(),
            partition: Some("debug".into()),
        }
    }

    #[test]
    fn quoting_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("student.seeds=[1]"), "'student.seeds=[1]'");
        assert_eq!(quote("/a/b.yaml"), "/a/b.yaml");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn students_pick_their_arguments_by_index() {
        let body = step_body(&plan(), "students", "SLURM_ARRAY_TASK_ID");
        assert!(body.contains("case \"$SLURM_ARRAY_TASK_ID\" in"), "{body}");
        assert!(body.contains("  1) set -- --set 'student.model.hidden=[8, 8]'; task=point-001-seed-1 ;;"), "{body}");
        assert!(body.contains("'/shared/pipelines/digits sweep.yaml' --cache-dir /shared/cache --resume --set student.train.epochs=3 \"$@\""), "{body}");
        assert!(step_body(&plan(), "teacher", "I").ends_with("--teacher-only\n"));
        assert!(step_body(&plan(), "logits", "I").contains("logits '/shared/pipelines/digits sweep.yaml'"));
    }
}
