"""One router per resource; each route names one action of identity.policy."""
