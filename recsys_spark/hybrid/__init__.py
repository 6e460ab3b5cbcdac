"""Hybrid recommendations: several models' candidate lists fused into one, by fixed rules, by weights
fitted on the tuning cut, or by a learned ranker."""
