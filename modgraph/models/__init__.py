"""Standard networks declared as modgraph DAGs."""

from modgraph.models.gcn import attention_appnp, attention_gcn, attention_gcnii, gcn, gcn_net, hop_attention

__all__ = ["attention_appnp", "attention_gcn", "attention_gcnii", "gcn", "gcn_net", "hop_attention"]
