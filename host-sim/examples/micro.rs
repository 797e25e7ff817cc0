use sgmrl_host::gemm::{a_b, a_bt};
use std::time::Instant;
fn main() {
    let (k, n) = (100usize, 100usize);
    let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.91).cos()).collect();
    let mut wt = vec![0.0f32; k * n];
    for o in 0..n {
        for i in 0..k {
            wt[i * n + o] = w[o * k + i];
        }
    }
    for m in [20usize, 80, 400] {
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut c = vec![0.0f32; m * n];
        let reps = 400_000 / m;
        let t = Instant::now();
        for _ in 0..reps {
            a_bt(m, k, n, &a, &w, 0.0, &mut c);
        }
        let us = t.elapsed().as_secs_f64() / reps as f64 * 1e6;
        let mut c2 = vec![0.0f32; m * n];
        let t = Instant::now();
        for _ in 0..reps {
            a_b(m, k, n, &a, &wt, 0.0, &mut c2);
        }
        let us2 = t.elapsed().as_secs_f64() / reps as f64 * 1e6;
        assert!(c.iter().zip(&c2).all(|(x, y)| (x - y).abs() < 1e-3));
        println!("{m}x100x100: a_bt {us:.2} us, a_b(pre-transposed) {us2:.2} us");
    }
}
