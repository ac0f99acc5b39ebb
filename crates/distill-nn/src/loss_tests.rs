//! Tests of the losses: gradients against finite differences, masks, and building from recipes.

use super::*;

/// Central finite differences of the loss agree with the analytic gradient.
fn check_gradient(loss: &dyn Loss, teacher: Option<&[f32]>) {
    check_gradient_labels(loss, teacher, &[2, 3]);
    check_gradient_labels(loss, teacher, &[NO_LABEL, 1]);
}

fn check_gradient_labels(loss: &dyn Loss, teacher: Option<&[f32]>, labels: &[u32]) {
    let student = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
    let labels = [labels[0], labels[1]];
    let k = 4;
    let (_, grad) = loss.value_and_grad(&student, teacher, &labels, k).unwrap();
    for idx in 0..student.len() {
        let h = 1e-3f32;
        let mut plus = student;
        plus[idx] += h;
        let mut minus = student;
        minus[idx] -= h;
        let numeric =
            (loss.value_and_grad(&plus, teacher, &labels, k).unwrap().0 - loss.value_and_grad(&minus, teacher, &labels, k).unwrap().0) / (2.0 * h as f64);
        assert!((numeric - grad[idx] as f64).abs() < 1e-4, "index {idx}: numeric {numeric} vs analytic {}", grad[idx]);
    }
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    check_gradient(&CrossEntropy, None);
}

#[test]
fn kd_gradient_matches_finite_differences() {
    let teacher = [1.0f32, 0.0, 3.0, -1.0, 0.2, 0.2, -2.0, 2.5];
    check_gradient(&HintonKd { temperature: 2.0, alpha: 0.5 }, Some(&teacher));
    check_gradient(&HintonKd { temperature: 4.0, alpha: 1.0 }, Some(&teacher));
}

#[test]
fn kd_is_zero_when_student_equals_teacher_and_alpha_is_one() {
    let logits = [1.0f32, 2.0, 3.0];
    let (v, g) = HintonKd { temperature: 3.0, alpha: 1.0 }.value_and_grad(&logits, Some(&logits), &[0], 3).unwrap();
    assert!(v.abs() < 1e-12);
    assert!(g.iter().all(|x| x.abs() < 1e-7));
}

#[test]
fn unlabelled_rows_get_only_the_soft_term_exactly() {
    let student = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0];
    let teacher = [1.0f32, 0.0, 3.0, -1.0, 0.2, 0.2];
    let kd = HintonKd { temperature: 2.0, alpha: 0.5 };
    let (v_masked, g_masked) = kd.value_and_grad(&student, Some(&teacher), &[NO_LABEL, 1], 3).unwrap();
    let (v_soft, g_soft) = HintonKd { temperature: 2.0, alpha: 1.0 }.value_and_grad(&student, Some(&teacher), &[NO_LABEL, 1], 3).unwrap();
    // Row 0 has no label: its gradient is exactly half the pure soft gradient (alpha = 0.5).
    for j in 0..3 {
        assert_eq!(g_masked[j], (g_soft[j] as f64 * 0.5) as f32);
    }
    // Any label value on row 0 is ignored when it is NO_LABEL; a real label changes things.
    let (v_labelled, _) = kd.value_and_grad(&student, Some(&teacher), &[0, 1], 3).unwrap();
    assert!(v_labelled > v_masked);
    assert!(v_soft > 0.0);
}

#[test]
fn teacher_hard_uses_the_teachers_top_class() {
    let teacher = [0.0f32, 5.0, 0.0];
    let student = [0.1f32, 0.2, 0.3];
    let a = TeacherHard.value_and_grad(&student, Some(&teacher), &[NO_LABEL], 3);
    let b = CrossEntropy.value_and_grad(&student, None, &[1], 3);
    assert_eq!(a, b);
}

#[test]
fn cross_entropy_of_uniform_logits_is_ln_k() {
    let (v, _) = CrossEntropy.value_and_grad(&[0.0; 10], None, &[3], 10).unwrap();
    assert!((v - 10f64.ln()).abs() < 1e-12);
}

const TEACHER: [f32; 8] = [1.0, 0.0, 3.0, -1.0, 0.2, 0.2, -2.0, 2.5];

#[test]
fn label_smoothing_gradient_and_limits() {
    check_gradient(&SmoothedCrossEntropy { label_smoothing: 0.1 }, None);
    let s = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
    let (a, ga) = SmoothedCrossEntropy { label_smoothing: 0.0 }.value_and_grad(&s, None, &[2, NO_LABEL], 4).unwrap();
    let (b, gb) = CrossEntropy.value_and_grad(&s, None, &[2, NO_LABEL], 4).unwrap();
    assert!((a - b).abs() < 1e-12);
    for (x, y) in ga.iter().zip(&gb) {
        assert!((x - y).abs() < 1e-7);
    }
    // The unlabelled row gets no gradient at all.
    assert!(ga[4..].iter().all(|g| *g == 0.0));
    let (_, g) = SmoothedCrossEntropy { label_smoothing: 0.3 }.value_and_grad(&s, None, &[NO_LABEL, NO_LABEL], 4).unwrap();
    assert!(g.iter().all(|g| *g == 0.0));
}

#[test]
fn soft_ce_matches_kd_soft_term_up_to_the_teacher_entropy() {
    check_gradient(&SoftTargetCrossEntropy { temperature: 3.0 }, Some(&TEACHER));
    let s = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
    let t = 3.0;
    let (v_ce, g_ce) = SoftTargetCrossEntropy { temperature: t }.value_and_grad(&s, Some(&TEACHER), &[NO_LABEL, 0], 4).unwrap();
    let (v_kd, g_kd) = HintonKd { temperature: t, alpha: 1.0 }.value_and_grad(&s, Some(&TEACHER), &[NO_LABEL, 0], 4).unwrap();
    for (a, b) in g_ce.iter().zip(&g_kd) {
        assert!((a - b).abs() < 1e-7);
    }
    let mut entropy = 0.0;
    let mut p = vec![0.0; 4];
    for row in TEACHER.chunks(4) {
        softmax_t(row, t, &mut p);
        entropy -= p.iter().map(|p| p * p.ln()).sum::<f64>();
    }
    assert!((v_ce - v_kd - t * t * entropy / 2.0).abs() < 1e-9);
}

#[test]
fn mse_logits_gradient_and_value() {
    check_gradient(&MseLogits, Some(&TEACHER));
    let (v, _) = MseLogits.value_and_grad(&[1.0, 2.0], Some(&[0.0, 0.0]), &[NO_LABEL], 2).unwrap();
    assert!((v - 2.5).abs() < 1e-12);
}

#[test]
fn dkd_gradient_matches_finite_differences() {
    check_gradient(&Dkd { temperature: 4.0, alpha: 1.0, beta: 8.0 }, Some(&TEACHER));
    check_gradient(&Dkd { temperature: 1.0, alpha: 0.5, beta: 2.0 }, Some(&TEACHER));
}

#[test]
fn dkd_decomposes_kd_as_in_the_paper() {
    // KD = TCKD + (1 - p_t(y)) * NCKD (Zhao et al., eq. 5), per row.
    let s = [0.3f32, -1.2, 2.0, 0.5];
    let t_logits = [1.0f32, 0.0, 3.0, -1.0];
    for (label, temp) in [(2u32, 1.0), (0, 2.0), (NO_LABEL, 4.0)] {
        let y = if label == NO_LABEL { 2 } else { label as usize };
        let (tckd, _) = Dkd { temperature: temp, alpha: 1.0, beta: 0.0 }.value_and_grad(&s, Some(&t_logits), &[label], 4).unwrap();
        let (nckd, _) = Dkd { temperature: temp, alpha: 0.0, beta: 1.0 }.value_and_grad(&s, Some(&t_logits), &[label], 4).unwrap();
        let (kd, _) = HintonKd { temperature: temp, alpha: 1.0 }.value_and_grad(&s, Some(&t_logits), &[label], 4).unwrap();
        let mut pt = vec![0.0; 4];
        softmax_t(&t_logits, temp, &mut pt);
        assert!((kd - (tckd + (1.0 - pt[y]) * nckd)).abs() < 1e-9, "label {label}: {kd} vs {tckd} + ... {nckd}");
    }
}

#[test]
fn dkd_is_finite_on_saturated_logits() {
    let s = [0.0f32, 0.0, 200.0];
    let t = [0.0f32, 1.0, 300.0];
    let (v, g) = Dkd { temperature: 1.0, alpha: 1.0, beta: 8.0 }.value_and_grad(&s, Some(&t), &[2], 3).unwrap();
    assert!(v.is_finite() && g.iter().all(|g| g.is_finite()), "{v} {g:?}");
    // The non-target part still sees the non-target classes, though p_y rounds to 1.
    assert!(g[1] < 0.0);
}

#[test]
fn precomputed_soft_targets_give_bitwise_the_same_loss() {
    let student = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4, 0.9, -0.3, 0.2, 0.0];
    let teacher = [1.0f32, 0.2, -0.5, 2.0, 0.0, 3.0, 0.1, -1.0, 0.4, 0.4, 0.4, 0.5];
    let labels = [2, NO_LABEL, 0];
    let terms: Vec<(f64, Box<dyn Loss>)> = vec![
        (0.7, Box::new(HintonKd { temperature: 4.0, alpha: 1.0 })),
        (0.3, Box::new(SoftTargetCrossEntropy { temperature: 2.0 })),
        (1.0, Box::new(CrossEntropy)),
    ];
    let losses: Vec<Box<dyn Loss>> =
        vec![Box::new(HintonKd { temperature: 3.0, alpha: 0.5 }), Box::new(SoftTargetCrossEntropy { temperature: 2.5 }), Box::new(WeightedSum { terms })];
    for loss in &losses {
        let temperatures = loss.soft_target_temperatures();
        assert!(!temperatures.is_empty());
        // Precomputed over a larger set (a spare row first), gathered for the batch's rows.
        let all: Vec<f32> = [0.0f32; 4].iter().chain(&teacher).copied().collect();
        let soft = crate::soft_targets::SoftTargets::new(&all, 4, &temperatures).gather(&[1, 2, 3]);
        let plain = loss.value_and_grad(&student, Some(&teacher), &labels, 4).unwrap();
        let fast = loss.value_and_grad_soft(&student, Some(&teacher), &soft, &labels, 4).unwrap();
        assert_eq!(plain.0.to_bits(), fast.0.to_bits());
        assert_eq!(plain.1, fast.1);
        // Soft targets for the wrong number of rows are an error, not a panic.
        let short = crate::soft_targets::SoftTargets::new(&all, 4, &temperatures).gather(&[1]);
        assert!(loss.value_and_grad_soft(&student, Some(&teacher), &short, &labels, 4).is_err());
    }
    assert!(CrossEntropy.soft_target_temperatures().is_empty());
    assert!(HintonKd { temperature: 2.0, alpha: 0.0 }.soft_target_temperatures().is_empty());
}

#[test]
fn weighted_sum_adds_values_and_gradients() {
    let sum =
        WeightedSum { terms: vec![(0.7, Box::new(HintonKd { temperature: 4.0, alpha: 1.0 })), (0.3, Box::new(SmoothedCrossEntropy { label_smoothing: 0.1 }))] };
    check_gradient(&sum, Some(&TEACHER));
    assert!(sum.needs_teacher());
    let s = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
    let (v, _) = sum.value_and_grad(&s, Some(&TEACHER), &[1, NO_LABEL], 4).unwrap();
    let (a, _) = HintonKd { temperature: 4.0, alpha: 1.0 }.value_and_grad(&s, Some(&TEACHER), &[1, NO_LABEL], 4).unwrap();
    let (b, _) = SmoothedCrossEntropy { label_smoothing: 0.1 }.value_and_grad(&s, Some(&TEACHER), &[1, NO_LABEL], 4).unwrap();
    assert!((v - (0.7 * a + 0.3 * b)).abs() < 1e-12);
    let no_teacher = WeightedSum { terms: vec![(1.0, Box::new(CrossEntropy)), (0.0, Box::new(MseLogits))] };
    assert!(!no_teacher.needs_teacher());
}

#[test]
fn bad_buffers_are_errors_not_panics() {
    assert!(CrossEntropy.value_and_grad(&[0.0; 3], None, &[5], 3).is_err());
    assert!(HintonKd { temperature: 2.0, alpha: 0.5 }.value_and_grad(&[0.0; 3], Some(&[0.0; 2]), &[0], 3).is_err());
    assert!(Dkd { temperature: 2.0, alpha: 1.0, beta: 1.0 }.value_and_grad(&[0.0; 3], None, &[0], 3).is_err());
    assert!(MseLogits.value_and_grad(&[0.0; 4], Some(&[0.0; 4]), &[0], 3).is_err());
}

#[test]
fn recipes_build_the_right_losses() {
    let spec = |text: &str| -> LossSpec { serde_yaml::from_str(text).unwrap() };
    let s = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
    let labels = [1u32, NO_LABEL];
    let eval = |l: &dyn Loss| l.value_and_grad(&s, Some(&TEACHER), &labels, 4).unwrap();
    let flat = build_loss(&spec("{kind: kd, temperature: 4, alpha: 0.9}")).unwrap();
    assert_eq!(eval(flat.as_ref()), eval(&HintonKd { temperature: 4.0, alpha: 0.9 }));
    assert_eq!(eval(build_loss(&spec("{kind: ce}")).unwrap().as_ref()), eval(&CrossEntropy));
    assert_eq!(eval(build_loss(&spec("{kind: ce, label_smoothing: 0.2}")).unwrap().as_ref()), eval(&SmoothedCrossEntropy { label_smoothing: 0.2 }));
    assert_eq!(eval(build_loss(&spec("{kind: dkd, temperature: 3}")).unwrap().as_ref()), eval(&Dkd { temperature: 3.0, alpha: 1.0, beta: 8.0 }));
    assert_eq!(eval(build_loss(&spec("{kind: soft_ce, temperature: 3}")).unwrap().as_ref()), eval(&SoftTargetCrossEntropy { temperature: 3.0 }));
    assert_eq!(eval(build_loss(&spec("{kind: mse_logits}")).unwrap().as_ref()), eval(&MseLogits));
    assert_eq!(eval(build_loss(&spec("{kind: teacher_hard}")).unwrap().as_ref()), eval(&TeacherHard));
    let terms = build_loss(&spec("{terms: {kd: {weight: 0.7, temperature: 4}, ce: {weight: 0.3}}}")).unwrap();
    let by_hand = WeightedSum { terms: vec![(0.3, Box::new(CrossEntropy)), (0.7, Box::new(HintonKd { temperature: 4.0, alpha: 1.0 }))] };
    assert_eq!(eval(terms.as_ref()), eval(&by_hand));
    assert!(build_loss(&spec("{kind: cosine_kd}")).is_none());
    assert!(build_loss(&spec("{terms: {ce: {weight: 1}, cosine_kd: {weight: 1}}}")).is_none());
    // A plugin term gets its parameters with `alpha: 1`; the host applies the weight.
    let mut seen = Vec::new();
    let built = build_loss_with(&spec("{terms: {ce: {weight: 0.5}, my_kd: {weight: 2, temperature: 3, params: {p: 1}}}}"), &mut |name, params| {
        seen.push((name.to_string(), params));
        Ok(Box::new(MseLogits) as Box<dyn Loss>)
    })
    .unwrap();
    assert_eq!(seen, [("my_kd".to_string(), serde_json::json!({"p": 1, "temperature": 3.0, "alpha": 1.0}))]);
    let expected = WeightedSum { terms: vec![(0.5, Box::new(CrossEntropy)), (2.0, Box::new(MseLogits))] };
    assert_eq!(eval(built.as_ref()), eval(&expected));
}
