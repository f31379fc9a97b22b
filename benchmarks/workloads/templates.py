"""Render an HTML report with jinja2: inheritance, macros, loops, filters, autoescaping."""

import sys

import jinja2

N = int(sys.argv[1]) if len(sys.argv) > 1 else 350

TEMPLATES = {
    "base.html": """<!doctype html>
<html><head><title>{% block title %}{% endblock %}</title></head>
<body>{% block body %}{% endblock %}<footer>{{ footer }}</footer></body></html>
""",
    "macros.html": """{% macro badge(tag) -%}
<span class="badge badge-{{ tag | lower }}">{{ tag | title }}</span>
{%- endmacro %}
{% macro money(value) -%}{{ "%.2f" | format(value) }} EUR{%- endmacro %}
""",
    "report.html": """{% extends "base.html" %}
{% import "macros.html" as m %}
{% block title %}Orders for {{ customer.name | e }}{% endblock %}
{% block body %}
<h1>{{ customer.name }} &lt;{{ customer.email }}&gt;</h1>
<table>
{% for order in orders %}
  <tr class="{{ loop.cycle('odd', 'even') }}">
    <td>{{ loop.index }}</td><td>{{ order.id }}</td>
    <td>{% for tag in order.tags %}{{ m.badge(tag) }}{% endfor %}</td>
    <td>{{ order.note | truncate(30) }}</td>
    <td>{{ m.money(order.lines | sum(attribute="total")) }}</td>
  </tr>
  {% for line in order.lines if line.qty > 1 %}
  <tr><td colspan="3">{{ line.sku | upper }}</td><td>{{ line.qty }}</td>
      <td>{{ m.money(line.total) }}</td></tr>
  {% endfor %}
{% endfor %}
</table>
<p>{{ orders | length }} orders,
   {{ orders | map(attribute="lines") | map("length") | sum }} lines</p>
{% endblock %}
""",
}

TAGS = ["new", "gift", "express", "fragile", "bulk"]


def make_orders(customer: int) -> list[dict]:
    """Deterministic order data for one customer."""
    return [
        {
            "id": f"O-{customer:04d}-{k:03d}",
            "tags": TAGS[: 1 + (customer + k) % len(TAGS)],
            "note": f"Deliver to <door {k}> & ring twice, customer {customer} " * (1 + k % 3),
            "lines": [
                {"sku": f"sku-{j}", "qty": 1 + (j * k) % 4, "total": j * 2.5 + k}
                for j in range(1 + k % 6)
            ],
        }
        for k in range(40)
    ]


def main() -> None:
    """Render the report for N customers and print the total size."""
    env = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True, trim_blocks=True)
    template = env.get_template("report.html")
    pages = []
    for c in range(N):
        customer = {"name": f"Customer {c} & Sons", "email": f"c{c}@example.org"}
        pages.append(template.render(customer=customer, orders=make_orders(c), footer="(c)"))
    print(sum(len(p) for p in pages))


main()
