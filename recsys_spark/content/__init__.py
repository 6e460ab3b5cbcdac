"""Content-based recommendations: items by what their text says, so items nobody has touched yet
can be recommended."""
