"""A template engine: jinja2 templates compiled from strings, rendered and discarded."""

import os

import jinja2

SCALE = int(os.environ.get("PARITY_SCALE", "1"))


def main() -> None:
    total = 0
    for i in range(40 * SCALE):
        env = jinja2.Environment(autoescape=True, cache_size=0)
        template = env.from_string(
            "<h1>{{ title }} " + str(i) + "</h1><ul>"
            '{% for row in rows %}<li class=\'{{ loop.cycle("a", "b") }}\'>'
            "{{ row.name | upper }}: {{ row.value | round(2) }}</li>{% endfor %}</ul>"
        )
        rows = [{"name": f"row{k}", "value": k / 3} for k in range(50)]
        total += len(template.render(title="Report", rows=rows))
    print(total)


if __name__ == "__main__":
    main()
