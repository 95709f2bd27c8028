// cl/optim.cl: optimizer steps over flat parameter/gradient buffers, fp32, following
// torch.optim.Adam / AdamW (PyTorch 1.13's single-tensor formulas), gradient-norm clipping as
// torch.nn.utils.clip_grad_norm_, and an exponential moving average of the parameters.
// The optimizer's state lives on the device: state[0] step count (uint bits; steps done so far),
// state[1] learning rate, state[2] squared global gradient norm of the current step.

// p, g, m, v over n elements. max_norm > 0 scales the gradient by
// min(1, max_norm / (norm + 1e-6)) with norm = sqrt(state[2]).
// Once per step, before adam_step: the step's scalars, computed by one work-item instead of by
// every element (pown and sqrt per element dominated the update of a 49,408-token vocabulary):
// state[3] = 1 - beta1^t, state[4] = sqrt(1 - beta2^t), state[5] = the clipping factor (1: none).
kernel void adam_prepare(const float beta1, const float beta2, const float max_norm,
                         global float *state, const ulong state_off) {
    if (get_global_id(0) != 0) return;
    const uint t = as_uint(state[state_off]) + 1;
    float coef = 1.0f;
    if (max_norm > 0.0f) {
        const float c = max_norm / (sqrt(state[state_off + 2]) + 1e-6f);
        if (c < 1.0f) coef = c;
    }
    state[state_off + 3] = 1.0f - pown(beta1, (int)t);
    state[state_off + 4] = sqrt(1.0f - pown(beta2, (int)t));
    state[state_off + 5] = coef;
}

// One Adam/AdamW update of element i, torch.optim's formulas in fp32, with the scalars from
// adam_prepare (state[1] = learning rate).
kernel void adam_step(const int n, const float beta1, const float beta2, const float eps,
                      const float weight_decay, const int decoupled, const float max_norm,
                      global const float *state, const ulong state_off, global float *p,
                      const ulong p_off, global const float *g, const ulong g_off, global float *m,
                      const ulong m_off, global float *v, const ulong v_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float lr = state[state_off + 1];
    const float bc1 = state[state_off + 3], bc2_sqrt = state[state_off + 4];
    float grad = g[g_off + i], param = p[p_off + i];
    if (max_norm > 0.0f) grad *= state[state_off + 5];
    if (weight_decay != 0.0f) {
        if (decoupled) param *= 1.0f - lr * weight_decay; // AdamW
        else grad += weight_decay * param;                // Adam's L2 term
    }
    const float mt = beta1 * m[m_off + i] + (1.0f - beta1) * grad;
    const float vt = beta2 * v[v_off + i] + (1.0f - beta2) * grad * grad;
    m[m_off + i] = mt;
    v[v_off + i] = vt;
    const float denom = sqrt(vt) / bc2_sqrt + eps;
    p[p_off + i] = param - (lr / bc1) * (mt / denom);
}

// state[0] += 1 (after every kernel of the step has read it: the queue is in order)
kernel void step_count(global float *state, const ulong state_off) {
    if (get_global_id(0) == 0) state[state_off] = as_float(as_uint(state[state_off]) + 1);
}

// ema = d * ema + (1 - d) * p with d = decay, or with warm-up min(decay, (1 + k) / (10 + k)) where
// k = counter[0] counts the updates done before this one (diffusers' EMAModel).
/* Exchanges a and b element by element: the EMA's weights into the model and back, in place. */
kernel void swap_values(const int n, global float *a, const ulong a_off, global float *b,
                        const ulong b_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float t = a[a_off + i];
    a[a_off + i] = b[b_off + i];
    b[b_off + i] = t;
}

kernel void ema_update(const int n, const float decay, const int warmup, global const float *counter,
                       const ulong counter_off, global float *ema, const ulong ema_off,
                       global const float *p, const ulong p_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    float d = decay;
    if (warmup) {
        const float k = (float)as_uint(counter[counter_off]);
        d = fmin(decay, (1.0f + k) / (10.0f + k));
    }
    ema[ema_off + i] -= (1.0f - d) * (ema[ema_off + i] - p[p_off + i]);
}
