//! `distill submit`: a recipe as cluster jobs (distill-cluster) over one shared cache: the
//! teacher, the logits array, one student task per sweep point and seed, the report.

use std::path::{Path, PathBuf};

use distill_cluster::{k8s, slurm, Plan, StudentTask};
use distill_pipeline::RunOptions;
use distill_spec::{Pipeline, SweepPoint};

use crate::error_chain;

/// Where and how to submit.
pub(crate) struct Target {
    pub slurm: bool,
    pub shards: usize,
    pub partition: Option<String>,
    pub dry_run: bool,
    pub wait: bool,
    pub out: Option<PathBuf>,
    pub image: String,
    pub claim: String,
}

fn seeds(p: &Pipeline) -> Vec<u64> {
    p.student.seeds.clone().unwrap_or_else(|| vec![p.seed])
}

/// The tasks of one recipe (or sweep point) `p`: one per seed, with `args` first.
fn per_seed(prefix: &str, args: &[String], p: &Pipeline) -> Vec<StudentTask> {
    let seeds = seeds(p);
    let several = seeds.len() > 1;
    seeds
        .into_iter()
        .map(|s| {
            let mut args = args.to_vec();
            if several {
                args.extend(["--set".to_string(), format!("student.seeds=[{s}]")]);
            }
            StudentTask { name: format!("{prefix}seed-{s}"), args }
        })
        .collect()
}

/// One task per sweep point (or the recipe) and seed: `distill run`'s extra arguments.
fn student_tasks(p: &Pipeline, points: &[SweepPoint]) -> Vec<StudentTask> {
    if points.is_empty() {
        return per_seed("", &[], p);
    }
    let mut out = Vec::new();
    for point in points {
        // The point as an ordinary run: the sweep removed, the point's keys set.
        let mut args = vec!["--set".to_string(), "sweep=null".to_string()];
        for (key, value) in &point.sets {
            args.extend(["--set".to_string(), format!("{key}={}", distill_spec::sweep::inline(value))]);
        }
        out.extend(per_seed(&format!("point-{:03}-", point.index), &args, &point.pipeline));
    }
    out
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn plan(file: &Path, overrides: &[String], cache_dir: Option<PathBuf>, target: &Target) -> Result<Plan, String> {
    let p = distill_spec::load(file, overrides).map_err(|e| error_chain(&e))?;
    let points = distill_spec::sweep::points(file, &p, overrides).map_err(|e| error_chain(&e))?;
    if let Some(key) = distill_pipeline::swept_teacher_key(&points) {
        return Err(format!("{}: sweep: `{key}` is swept, so every point has a teacher of its own; submit supports sweeps over student keys", file.display()));
    }
    if target.shards == 0 {
        return Err("--shards must be at least 1".into());
    }
    let options = RunOptions { pipeline: file.to_path_buf(), overrides: overrides.to_vec(), cache_dir, ..Default::default() };
    let cache = distill_pipeline::cache_dir(&options).map_err(|e| error_chain(&e))?;
    let out = target.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&p.name).join(distill_pipeline::new_run_id()));
    Ok(Plan {
        name: p.name.clone(),
        distill: std::env::current_exe().map_err(|e| format!("cannot tell where this distill binary is: {e}"))?,
        pipeline: absolute(file)?,
        workdir: std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))?,
        cache_dir: absolute(&cache)?,
        overrides: overrides.to_vec(),
        shards: target.shards,
        students: student_tasks(&p, &points),
        out: absolute(&out)?,
        partition: target.partition.clone(),
    })
}

pub(crate) fn command(file: &Path, overrides: &[String], cache_dir: Option<PathBuf>, target: Target) -> Result<u8, String> {
    let plan = plan(file, overrides, cache_dir, &target)?;
    if !target.slurm {
        let options = k8s::K8sOptions { image: target.image.clone(), claim: target.claim.clone() };
        print!("{}", k8s::manifests(&plan, &options).map_err(|e| error_chain(&e))?);
        return Ok(0);
    }
    if target.dry_run {
        print!("{}", slurm::dry_run(&plan));
        return Ok(0);
    }
    let submitted = slurm::submit(&plan, target.wait).map_err(|e| error_chain(&e))?;
    for s in &submitted {
        println!("{:<9} job {}  ({})", s.step, s.job_id, s.command);
    }
    println!("{} student tasks, {} logit shards; the report lands in {}", plan.students.len(), plan.shards, plan.out.display());
    Ok(0)
}
