"""Standard networks declared as modgraph DAGs."""

from modgraph.models.gcn import attention_appnp, attention_gcn, attention_gcnii, gcn, gcn_net, hop_attention
from modgraph.models.mlp import attention_mlp, random_dag

__all__ = ["attention_appnp", "attention_gcn", "attention_gcnii", "attention_mlp", "gcn", "gcn_net", "hop_attention",
           "random_dag"]
