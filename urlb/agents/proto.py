"""ProtoRL: Yarats et al., "Reinforcement Learning with Prototypical Representations" (2021)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from urlb.agents.base import Metrics, Plugin
from urlb.agents.rewards import nearest_distances
from urlb.nets import adam, mlp, weight_init
from urlb.replay import Batch


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, iterations: int = 3) -> torch.Tensor:
    """Balanced soft assignment of B samples to K prototypes (SwAV's Sinkhorn-Knopp).

    ``scores`` (B, K) are logits. The result (B, K) has rows summing to 1 (each sample's
    assignment), and per-prototype sums approach B/K as ``iterations`` grows.
    """
    q = torch.exp(scores - scores.max()).T  # (K, B); the max shift only guards exp
    q = q / q.sum()
    num_protos, batch = q.shape
    for _ in range(iterations):
        q = q * ((1.0 / num_protos) / q.sum(dim=1, keepdim=True))  # each prototype: mass 1/K
        q = q * ((1.0 / batch) / q.sum(dim=0, keepdim=True))  # each sample: mass 1/B
    return (q / q.sum(dim=0, keepdim=True)).T


class Proto(Plugin):
    """ProtoRL (Yarats et al., 2021) as in URLB: a projected state embedding predicts the
    Sinkhorn-balanced prototype assignment of a slowly-moving target embedding of the next
    state; reward = distance from the next state's embedding to its ``topk``-th nearest
    neighbour in a queue of prototype-matched candidates."""

    name = "proto"
    finetune_critic_copy = "all"  # URLB ProtoAgent.init_from copies the whole critic
    # Pixels (URLB): the frames are shifted once; the online branch encodes them with the shared
    # encoder (trained by the prototype loss), the target branch with a slowly-moving copy, and
    # the critic takes the updated encoder's features of the same shifted frames.
    pixel_input = "frames"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        lr: float = 1e-4,
        pred_dim: int = 128,
        proj_dim: int = 512,
        num_protos: int = 512,
        tau: float = 0.1,
        topk: int = 3,
        queue_size: int = 2048,
        encoder_target_tau: float = 0.05,
        sinkhorn_iterations: int = 3,
    ) -> None:
        super().__init__(obs_dim, action_dim)
        if queue_size % num_protos != 0:
            raise ValueError(
                f"queue_size={queue_size} must be a multiple of num_protos={num_protos}: "
                "each update enqueues one candidate per prototype"
            )
        if not 1 <= topk <= queue_size:
            raise ValueError(f"topk={topk} must be between 1 and queue_size={queue_size}")
        self.tau, self.topk, self.target_tau = tau, topk, encoder_target_tau
        self.sinkhorn_iterations = sinkhorn_iterations
        # States: URLB's encoder is the identity, so the predictor is the first layer on the state.
        self.predictor = nn.Linear(obs_dim, pred_dim)
        self.projector = mlp(pred_dim, proj_dim, pred_dim, num_hidden=1)
        self.protos = nn.Linear(pred_dim, num_protos, bias=False)
        self.apply(weight_init)
        self.predictor_target = copy.deepcopy(self.predictor).requires_grad_(False)
        # The candidate queue starts at zeros, as in URLB (early rewards see distance 1 to them).
        self.register_buffer("queue", torch.zeros(queue_size, pred_dim))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        params = [*self.predictor.parameters(), *self.projector.parameters(), *self.protos.parameters()]
        self.optimizer = self.add_optimizer("optimizer", adam(params, lr=lr))

    def use_encoder(self, encoder: nn.Module, aug: nn.Module, encoder_opt: torch.optim.Optimizer) -> None:
        super().use_encoder(encoder, aug, encoder_opt)
        self.encoder_target = copy.deepcopy(encoder).requires_grad_(False)
        self.optimizer.add_param_group({"params": list(encoder.parameters())})  # URLB's proto_opt holds it
        self._shifted: tuple[torch.Tensor, torch.Tensor] | None = None

    def _online(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float() if self.encoder is None else self.encoder(obs)

    def _target(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float() if self.encoder is None else self.encoder_target(obs)

    def critic_features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(self._shifted[0]), self.encoder(self._shifted[1])

    @torch.no_grad()
    def normalize_protos(self) -> None:
        """Prototypes live on the unit sphere: renormalised before every use."""
        self.protos.weight.copy_(F.normalize(self.protos.weight, dim=1))

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        """Unit-norm predictor embedding (no projector): what the queue and reward use."""
        return F.normalize(self.predictor(self._online(obs)), dim=1)

    def loss(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Cross-entropy between the target's Sinkhorn assignment of next_obs and the online
        softmax assignment of obs (both over prototypes, temperature tau)."""
        s = F.normalize(self.projector(self.predictor(self._online(obs))), dim=1)
        log_p = F.log_softmax(self.protos(s) / self.tau, dim=1)
        with torch.no_grad():
            t = F.normalize(self.predictor_target(self._target(next_obs)), dim=1)
            q = sinkhorn_knopp(self.protos(t) / self.tau, self.sinkhorn_iterations)
        return -(q * log_p).sum(dim=1).mean()

    def knn_reward(self, z: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        """Distance of each embedding to its topk-th nearest queue entry, shape (B, 1)."""
        return nearest_distances(z, queue, self.topk)[:, -1:]

    @torch.no_grad()
    def enqueue_candidates(self, z: torch.Tensor) -> None:
        """Each prototype draws one sample of the batch, with probability softmax over the
        batch of its scores, and the drawn embeddings replace the queue's oldest block."""
        prob = F.softmax(self.protos(z).T, dim=1)  # (K, B)
        candidates = torch.multinomial(prob, 1).squeeze(1)
        ptr, k = int(self.queue_ptr), prob.shape[0]
        self.queue[ptr : ptr + k] = z[candidates]
        self.queue_ptr.fill_((ptr + k) % self.queue.shape[0])

    @torch.no_grad()
    def _update_target(self) -> None:
        targets, onlines = [self.predictor_target], [self.predictor]
        if self.encoder is not None:
            targets, onlines = [self.encoder_target, *targets], [self.encoder, *onlines]
        target_params = [p for m in targets for p in m.parameters()]
        torch._foreach_lerp_(target_params, [p for m in onlines for p in m.parameters()], self.target_tau)

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        if self.encoder is not None:
            with torch.no_grad():
                self._shifted = (self.aug(batch.obs.float()), self.aug(batch.next_obs.float()))
            batch = batch._replace(obs=self._shifted[0], next_obs=self._shifted[1])
        self.normalize_protos()
        loss = self.loss(batch.obs, batch.next_obs)
        self.step(self.optimizer, loss)
        # Reward after the step (URLB): enqueue this batch's candidates, then kNN to the queue.
        with torch.no_grad():
            self.normalize_protos()
            z = self.embed(batch.next_obs)
            self.enqueue_candidates(z)
            reward = self.knn_reward(z, self.queue)
        self._update_target()
        return reward, {"proto_loss": loss.item()}

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        """kNN distance to the current queue, without enqueueing (analysis only)."""
        return self.knn_reward(self.embed(batch.next_obs), self.queue)
