"""Who may do what (issue 15): the one policy table (`policy`), the acting principal
(`principal`), API tokens (`tokens`), teams and service owners (`teams`), and the check
that combines them (`authorize.may`).

Domain layer: plain Python over the warehouse (`warehouse.people`); no web framework. The
CLI and the coming API both go through these functions, so a rule is written once.
"""
