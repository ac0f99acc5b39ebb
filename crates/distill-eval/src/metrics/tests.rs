use super::*;

fn names(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("c{i}")).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Two-class logits whose softmax gives probability `p` to `class`.
fn binary(p: f64, class: usize) -> [f32; 2] {
    let d = (p / (1.0 - p)).ln() as f32;
    if class == 0 {
        [d, 0.0]
    } else {
        [0.0, d]
    }
}

#[test]
fn accuracy_confusion_and_class_never_predicted() {
    // 3 classes; class 2 is in the labels but never predicted.
    let logits = [
        5.0, 0.0, 0.0, // pred 0, label 0
        5.0, 0.0, 0.0, // pred 0, label 0
        0.0, 5.0, 0.0, // pred 1, label 1
        5.0, 0.0, 0.0, // pred 0, label 1
        0.0, 5.0, 0.0, // pred 1, label 2
    ];
    let labels = [0, 0, 1, 1, 2];
    let ev = evaluate_model(&logits, &labels, &names(3), 10, 2).unwrap();
    assert!(close(ev.accuracy, 3.0 / 5.0));
    assert_eq!(ev.confusion.counts, vec![vec![2, 0, 0], vec![1, 1, 0], vec![0, 1, 0]]);
    let p = &ev.per_class;
    // class 0: tp 2, predicted 3, support 2
    assert!(close(p[0].precision, 2.0 / 3.0) && close(p[0].recall, 1.0));
    assert!(close(p[0].f1, 0.8));
    // class 1: tp 1, predicted 2, support 2
    assert!(close(p[1].precision, 0.5) && close(p[1].recall, 0.5) && close(p[1].f1, 0.5));
    // class 2: never predicted -> precision 0, not NaN
    assert_eq!((p[2].precision, p[2].recall, p[2].f1), (0.0, 0.0, 0.0));
    assert_eq!((p[2].support, p[2].predicted), (1, 0));
    assert!(close(ev.macro_f1, (0.8 + 0.5 + 0.0) / 3.0));
    // top-2: row 3 has label 1 second (ties with class 2, lower index wins); row 4 has
    // label 2 tied with class 0 for second, class 0 ranks first -> miss.
    assert!(close(ev.top_k_accuracy, 4.0 / 5.0));
    assert_eq!(ev.top_k, 2);
}

#[test]
fn class_absent_everywhere_is_excluded_from_macro_f1() {
    let logits = [3.0, 0.0, 0.0, 0.0, 3.0, 0.0];
    let ev = evaluate_model(&logits, &[0, 1], &names(3), 5, 1).unwrap();
    assert!(close(ev.macro_f1, 1.0));
    assert!(!ev.per_class[2].is_present());
}

#[test]
fn predicted_but_absent_class_counts_as_zero() {
    // label always 0; second row predicts class 1, which never occurs.
    let logits = [3.0, 0.0, 0.0, 3.0];
    let ev = evaluate_model(&logits, &[0, 0], &names(2), 5, 1).unwrap();
    // class 0: P=1, R=0.5, F1=2/3; class 1: F1=0.
    assert!(close(ev.macro_f1, (2.0 / 3.0) / 2.0));
}

#[test]
fn single_class_split_has_no_nan() {
    let logits = [2.0, 1.0, 4.0, 0.0, 1.0, 0.5];
    let labels = [0, 0, 0];
    let ev = evaluate_model(&logits, &labels, &names(2), 10, 5).unwrap();
    assert_eq!(ev.accuracy, 1.0);
    assert_eq!(ev.macro_f1, 1.0);
    assert_eq!(ev.top_k, 2);
    assert_eq!(ev.top_k_accuracy, 1.0);
    let json = serde_json::to_string(&ev).unwrap();
    assert!(!json.contains("null"), "NaN would serialize as null: {json}");
    for c in &ev.per_class {
        assert!(c.precision.is_finite() && c.recall.is_finite() && c.f1.is_finite());
    }
    assert!(ev.nll.is_finite() && ev.ece.is_finite());
}

#[test]
fn nll_matches_hand_computation_and_survives_large_logits() {
    // softmax([ln 3, 0]) = [0.75, 0.25]
    let logits = [3f32.ln(), 0.0, 3f32.ln(), 0.0];
    let nll = negative_log_likelihood(&logits, &[0, 1], 2).unwrap();
    assert!((nll - (-(0.75f64.ln()) - 0.25f64.ln()) / 2.0).abs() < 1e-6);
    let big = [1000.0, 0.0, 0.0, 1000.0];
    let nll = negative_log_likelihood(&big, &[0, 1], 2).unwrap();
    assert!(nll.is_finite() && nll < 1e-9);
}

#[test]
fn ece_on_hand_made_example() {
    // Four bins: (0,.25] (.25,.5] (.5,.75] (.75,1].
    // conf .7 correct, .7 wrong, .6 wrong -> bin 2: conf 2/3, acc 1/3
    // conf .9 correct                      -> bin 3: conf .9, acc 1
    let rows = [binary(0.7, 0), binary(0.7, 0), binary(0.6, 1), binary(0.9, 1)];
    let logits: Vec<f32> = rows.iter().flatten().copied().collect();
    let labels = [0, 1, 0, 1];
    let cal = calibration(&logits, &labels, 2, 4).unwrap();
    let counts: Vec<u64> = cal.bins.iter().map(|b| b.count).collect();
    assert_eq!(counts, vec![0, 0, 3, 1]);
    let b2 = &cal.bins[2];
    assert!((b2.mean_confidence - 2.0 / 3.0).abs() < 1e-6);
    assert!(close(b2.accuracy, 1.0 / 3.0));
    assert!((cal.bins[3].mean_confidence - 0.9).abs() < 1e-6);
    assert_eq!((cal.bins[0].mean_confidence, cal.bins[0].accuracy), (0.0, 0.0));
    assert!(close(cal.bins[3].upper, 1.0) && close(cal.bins[2].lower, 0.5));
    // 3/4 · |1/3 − 2/3| + 1/4 · |1 − 0.9| = 0.25 + 0.025
    assert!((cal.ece - 0.275).abs() < 1e-6, "ece = {}", cal.ece);
}

#[test]
fn confidence_one_lands_in_last_bin() {
    let cal = calibration(&[100.0, 0.0], &[0], 2, 10).unwrap();
    assert_eq!(cal.bins[9].count, 1);
}

#[test]
fn kl_is_zero_for_identical_logits_and_matches_hand_value() {
    let t = [1.0, 2.0, 3.0, -1.0, 0.5, 0.0];
    let a = agreement(&t, &t, 3).unwrap();
    assert_eq!(a.agreement, 1.0);
    assert!(a.mean_kl.abs() < 1e-12);
    // p = [.5, .5], q = [.75, .25]: KL = .5 ln(.5/.75) + .5 ln(.5/.25) = .5 ln(4/3)
    let a = agreement(&[0.0, 0.0], &[3f32.ln(), 0.0], 2).unwrap();
    assert!((a.mean_kl - 0.5 * (4.0f64 / 3.0).ln()).abs() < 1e-6);
    assert_eq!(a.agreement, 1.0);
    let a = agreement(&[1.0, 0.0, 0.0, 1.0], &[1.0, 0.0, 1.0, 0.0], 2).unwrap();
    assert_eq!(a.agreement, 0.5);
}

#[test]
fn bad_inputs_are_errors() {
    let c = names(2);
    assert_eq!(evaluate_model(&[], &[], &c, 10, 1), Err(EvalError::Empty));
    assert!(matches!(evaluate_model(&[1.0, 2.0, 3.0], &[0, 1], &c, 10, 1), Err(EvalError::LogitsShape { .. })));
    assert!(matches!(evaluate_model(&[1.0, 2.0], &[2], &c, 10, 1), Err(EvalError::LabelOutOfRange { label: 2, .. })));
    assert!(matches!(evaluate_model(&[1.0, f32::NAN], &[0], &c, 10, 1), Err(EvalError::NonFiniteLogit { row: 0, class: 1, .. })));
    assert!(matches!(evaluate_model(&[1.0, 2.0], &[0], &c, 0, 1), Err(EvalError::ZeroParameter { .. })));
    assert!(matches!(evaluate_model(&[1.0, 2.0], &[0], &c, 10, 0), Err(EvalError::ZeroParameter { .. })));
    assert_eq!(evaluate_model(&[], &[], &[], 10, 1), Err(EvalError::NoClasses));
    assert!(matches!(agreement(&[1.0, 2.0], &[1.0], 2), Err(EvalError::AgreementShape { .. })));
}

#[test]
fn predictions_break_ties_low() {
    assert_eq!(predictions(&[1.0, 1.0, 0.0, 0.0, 2.0, 2.0], 3).unwrap(), vec![0, 1]);
}

#[test]
fn evaluation_round_trips_through_json() {
    let ev = evaluate_model(&[1.0, 0.0, 0.0, 1.0], &[0, 0], &names(2), 3, 1).unwrap();
    let back: ModelEvaluation = serde_json::from_str(&serde_json::to_string(&ev).unwrap()).unwrap();
    assert_eq!(back, ev);
}
