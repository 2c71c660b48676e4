"""Statements parse to the exact typed AST the engine matches on."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cart_pipeline.engine.sql import ParseError, ast, parse_statements

TUTORIAL = """SET 'auto.offset.reset'='earliest';
CREATE STREAM shopping_cart_events (customer VARCHAR, item VARCHAR, qty INT)
  WITH (kafka_topic='shopping_cart_events', value_format='json', partitions=1);
INSERT INTO shopping_cart_events (customer, item, qty) VALUES ('bob', 'pants', 2);
SELECT * FROM shopping_cart_events EMIT CHANGES;
CREATE TABLE current_shopping_cart WITH (KEY_FORMAT='JSON') AS
  SELECT customer, item, SUM(qty) as total_qty FROM shopping_cart_events
  GROUP BY customer, item EMIT CHANGES;
SELECT * FROM current_shopping_cart EMIT CHANGES;
"""

STRING = ast.PrimitiveType("STRING")


def only(text: str) -> ast.Statement:
    (parsed,) = parse_statements(text)
    return parsed.statement


def test_tutorial_statements_parse_to_the_expected_ast() -> None:
    statements = [parsed.statement for parsed in parse_statements(TUTORIAL)]

    assert statements == [
        ast.SetProperty("auto.offset.reset", "earliest"),
        ast.CreateSource(
            "STREAM",
            "SHOPPING_CART_EVENTS",
            (
                ast.TableElement("CUSTOMER", STRING),
                ast.TableElement("ITEM", STRING),
                ast.TableElement("QTY", ast.PrimitiveType("INTEGER")),
            ),
            (
                ast.Property("KAFKA_TOPIC", ast.StringLiteral("shopping_cart_events")),
                ast.Property("VALUE_FORMAT", ast.StringLiteral("json")),
                ast.Property("PARTITIONS", ast.IntegerLiteral(1)),
            ),
        ),
        ast.InsertValues(
            "SHOPPING_CART_EVENTS",
            ("CUSTOMER", "ITEM", "QTY"),
            (ast.StringLiteral("bob"), ast.StringLiteral("pants"), ast.IntegerLiteral(2)),
        ),
        ast.Query((ast.AllColumns(),), ast.AliasedSource("SHOPPING_CART_EVENTS"), emit="CHANGES"),
        ast.CreateAsSelect(
            "TABLE",
            "CURRENT_SHOPPING_CART",
            ast.Query(
                (
                    ast.SelectColumn(ast.ColumnRef("CUSTOMER")),
                    ast.SelectColumn(ast.ColumnRef("ITEM")),
                    ast.SelectColumn(ast.FunctionCall("SUM", (ast.ColumnRef("QTY"),)), "TOTAL_QTY"),
                ),
                ast.AliasedSource("SHOPPING_CART_EVENTS"),
                group_by=(ast.ColumnRef("CUSTOMER"), ast.ColumnRef("ITEM")),
                emit="CHANGES",
            ),
            (ast.Property("KEY_FORMAT", ast.StringLiteral("JSON")),),
        ),
        ast.Query((ast.AllColumns(),), ast.AliasedSource("CURRENT_SHOPPING_CART"), emit="CHANGES"),
    ]


def test_statement_text_is_exact_source_including_semicolon() -> None:
    parsed = parse_statements(TUTORIAL)

    assert [p.text for p in parsed][:2] == [
        "SET 'auto.offset.reset'='earliest';",
        "CREATE STREAM shopping_cart_events (customer VARCHAR, item VARCHAR, qty INT)\n"
        "  WITH (kafka_topic='shopping_cart_events', value_format='json', partitions=1);",
    ]
    for p in parsed:
        assert TUTORIAL[p.start : p.end] == p.text
    assert [p.location.line for p in parsed] == [1, 2, 4, 5, 6, 9]


def test_leading_comments_are_not_part_of_statement_text_but_inner_ones_are() -> None:
    text = "-- setup\n/* a; b */ SHOW STREAMS /* inner; */;\n  LIST TABLES"

    parsed = parse_statements(text)

    assert [p.text for p in parsed] == ["SHOW STREAMS /* inner; */;", "LIST TABLES"]
    assert [p.statement for p in parsed] == [
        ast.ShowStatement("STREAMS"),
        ast.ShowStatement("TABLES"),
    ]


def test_semicolons_inside_strings_and_quoted_identifiers_do_not_split() -> None:
    parsed = parse_statements("INSERT INTO `a;b` (\"c;d\") VALUES ('x;y'); SHOW TOPICS;")

    assert parsed[0].statement == ast.InsertValues("a;b", ("c;d",), (ast.StringLiteral("x;y"),))
    assert len(parsed) == 2


def test_create_source_flags_constraints_and_property_literal_types() -> None:
    statement = only(
        "CREATE OR REPLACE SOURCE TABLE IF NOT EXISTS t (id BIGINT PRIMARY KEY, k INT KEY,"
        " h BYTES HEADER('trace'), hs ARRAY<STRUCT<`key` STRING, VALUE BYTES>> HEADERS,"
        " d DECIMAL(4, 2), m MAP<STRING, ARRAY<DOUBLE>>, c MyType)"
        " WITH (KAFKA_TOPIC='t', 'partitions'=3, replicas=-1, ratio=1.5, f=2E1, b=false,"
        " n=NULL);"
    )

    assert statement == ast.CreateSource(
        "TABLE",
        "T",
        (
            ast.TableElement("ID", ast.PrimitiveType("BIGINT"), "PRIMARY KEY"),
            ast.TableElement("K", ast.PrimitiveType("INTEGER"), "KEY"),
            ast.TableElement("H", ast.PrimitiveType("BYTES"), "HEADER", "trace"),
            ast.TableElement(
                "HS",
                ast.ArrayType(
                    ast.StructType(
                        (
                            ast.StructField("key", STRING),
                            ast.StructField("VALUE", ast.PrimitiveType("BYTES")),
                        )
                    )
                ),
                "HEADERS",
            ),
            ast.TableElement("D", ast.DecimalType(4, 2)),
            ast.TableElement("M", ast.MapType(STRING, ast.ArrayType(ast.PrimitiveType("DOUBLE")))),
            ast.TableElement("C", ast.CustomType("MYTYPE")),
        ),
        (
            ast.Property("KAFKA_TOPIC", ast.StringLiteral("t")),
            ast.Property("partitions", ast.IntegerLiteral(3)),
            ast.Property("REPLICAS", ast.IntegerLiteral(-1)),
            ast.Property("RATIO", ast.DecimalLiteral(Decimal("1.5"))),
            ast.Property("F", ast.DoubleLiteral(20.0)),
            ast.Property("B", ast.BooleanLiteral(False)),
            ast.Property("N", ast.NullLiteral()),
        ),
        or_replace=True,
        if_not_exists=True,
        is_source=True,
    )
    assert isinstance(statement, ast.CreateSource)
    assert ast.property_map(statement.properties)["PARTITIONS"] == ast.IntegerLiteral(3)


def test_source_as_a_stream_name_is_not_the_source_flag() -> None:
    statement = only("CREATE STREAM SOURCE (K STRING KEY) WITH (kafka_topic='s');")

    assert isinstance(statement, ast.CreateSource)
    assert (statement.name, statement.is_source) == ("SOURCE", False)


def test_insert_into_select_with_properties() -> None:
    statement = only("INSERT INTO out WITH (QUERY_ID='q1') SELECT * FROM src;")

    assert statement == ast.InsertInto(
        "OUT",
        ast.Query((ast.AllColumns(),), ast.AliasedSource("SRC")),
        (ast.Property("QUERY_ID", ast.StringLiteral("q1")),),
    )


def test_query_clauses_joins_and_windows_parse_into_nodes() -> None:
    statement = only(
        "SELECT l.*, r.v AS rv, s->* FROM left_s l LEFT OUTER JOIN right_t AS r"
        " WITHIN (1 SECOND, 2 MINUTES) GRACE PERIOD 3 HOURS ON l.id = r.id"
        " WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS, RETENTION 1 DAY)"
        " WHERE l.x > 1 GROUP BY l.id PARTITION BY l.k HAVING COUNT(*) > 2"
        " EMIT FINAL LIMIT 5;"
    )

    assert statement == ast.Query(
        (
            ast.AllColumns("L"),
            ast.SelectColumn(ast.ColumnRef("V", "R"), "RV"),
            ast.StructAllFields(ast.ColumnRef("S")),
        ),
        ast.Join(
            ast.AliasedSource("LEFT_S", "L"),
            (
                ast.JoinedSource(
                    "LEFT",
                    ast.AliasedSource("RIGHT_T", "R"),
                    ast.Comparison("=", ast.ColumnRef("ID", "L"), ast.ColumnRef("ID", "R")),
                    ast.JoinWindow(
                        ast.Duration(1, "SECONDS"),
                        ast.Duration(2, "MINUTES"),
                        ast.Duration(3, "HOURS"),
                    ),
                ),
            ),
        ),
        window=ast.WindowExpression(
            "HOPPING",
            ast.Duration(10, "SECONDS"),
            advance=ast.Duration(5, "SECONDS"),
            retention=ast.Duration(1, "DAYS"),
        ),
        where=ast.Comparison(">", ast.ColumnRef("X", "L"), ast.IntegerLiteral(1)),
        group_by=(ast.ColumnRef("ID", "L"),),
        partition_by=(ast.ColumnRef("K", "L"),),
        having=ast.Comparison(">", ast.FunctionCall("COUNT", (), star=True), ast.IntegerLiteral(2)),
        emit="FINAL",
        limit=5,
    )


def test_session_window_and_parenthesised_group_by() -> None:
    statement = only("SELECT k, COUNT(*) FROM s WINDOW SESSION (30 SECONDS) GROUP BY (k, j);")

    assert isinstance(statement, ast.Query)
    assert statement.window == ast.WindowExpression("SESSION", ast.Duration(30, "SECONDS"))
    assert statement.group_by == (ast.ColumnRef("K"), ast.ColumnRef("J"))


@pytest.mark.parametrize(
    ("text", "alias", "emit"),
    [
        ("SELECT * FROM s EMIT CHANGES;", None, "CHANGES"),
        ("SELECT * FROM s emit;", "EMIT", None),
        ("SELECT * FROM s emit EMIT CHANGES;", "EMIT", "CHANGES"),
        ("SELECT * FROM s ORDER;", "ORDER", None),
    ],
)
def test_non_reserved_words_are_aliases_unless_they_start_a_clause(
    text: str, alias: str | None, emit: str | None
) -> None:
    statement = only(text)

    assert isinstance(statement, ast.Query)
    assert statement.from_ == ast.AliasedSource("S", alias)
    assert statement.emit == emit


def test_non_reserved_keywords_work_as_column_names() -> None:
    statement = only("SELECT key, date, timestamp, source, `SIZE`, value FROM s;")

    assert isinstance(statement, ast.Query)
    assert [
        item.expression
        for item in statement.select  # type: ignore[union-attr]
    ] == [ast.ColumnRef(n) for n in ("KEY", "DATE", "TIMESTAMP", "SOURCE", "SIZE", "VALUE")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DROP STREAM IF EXISTS s DELETE TOPIC;", ast.DropSource("STREAM", "S", True, True)),
        ("DROP TABLE t;", ast.DropSource("TABLE", "T")),
        ("TERMINATE CTAS_T_3;", ast.TerminateQuery("CTAS_T_3")),
        ("TERMINATE ALL;", ast.TerminateQuery(None)),
        ("LIST STREAMS EXTENDED;", ast.ShowStatement("STREAMS", extended=True)),
        ("SHOW ALL TOPICS;", ast.ShowStatement("TOPICS", all_topics=True)),
        ("SHOW PROPERTIES;", ast.ShowStatement("PROPERTIES")),
        ("SHOW VARIABLES;", ast.ShowStatement("VARIABLES")),
        ("DESCRIBE s;", ast.DescribeSource("S")),
        ("DESCRIBE EXTENDED s;", ast.DescribeSource("S", extended=True)),
        ("DESCRIBE s EXTENDED;", ast.DescribeSource("S", extended=True)),
        ("DESCRIBE STREAMS EXTENDED;", ast.DescribeSources("STREAMS", extended=True)),
        ("DESCRIBE TABLES;", ast.DescribeSources("TABLES")),
        ("DESCRIBE FUNCTION sum;", ast.DescribeFunction("SUM")),
        ("UNSET 'auto.offset.reset';", ast.UnsetProperty("auto.offset.reset")),
        ("DEFINE topic_name = 'orders';", ast.DefineVariable("TOPIC_NAME", "orders")),
        ("UNDEFINE topic_name;", ast.UndefineVariable("TOPIC_NAME")),
        ("PRINT 'Orders' FROM BEGINNING LIMIT 3;", ast.PrintTopic("Orders", True, None, 3)),
        ("PRINT orders INTERVAL 2;", ast.PrintTopic("orders", False, 2, None)),
        ("EXPLAIN CSAS_X_0;", ast.Explain(query_id="CSAS_X_0")),
        ("EXPLAIN SHOW STREAMS;", ast.Explain(ast.ShowStatement("STREAMS"))),
        (
            "CREATE TYPE ADDRESS AS STRUCT<city STRING>;",
            ast.RegisterType("ADDRESS", ast.StructType((ast.StructField("CITY", STRING),))),
        ),
        ("DROP TYPE IF EXISTS address;", ast.DropType("ADDRESS", True)),
        (
            "ALTER STREAM s ADD COLUMN c INT;",
            ast.UnsupportedStatement("ALTER STREAM", "ALTER STREAM s ADD COLUMN c INT"),
        ),
        ("PAUSE ctas_t_1;", ast.UnsupportedStatement("PAUSE", "PAUSE ctas_t_1")),
        (
            "CREATE SOURCE CONNECTOR c WITH ('a'='b');",
            ast.UnsupportedStatement(
                "CREATE SOURCE CONNECTOR", "CREATE SOURCE CONNECTOR c WITH ('a'='b')"
            ),
        ),
    ],
)
def test_other_statements(text: str, expected: ast.Statement) -> None:
    assert only(text) == expected


def test_last_semicolon_is_optional() -> None:
    (parsed,) = parse_statements("  SHOW QUERIES  ")

    assert (parsed.text, parsed.statement) == ("SHOW QUERIES", ast.ShowStatement("QUERIES"))


def test_empty_request_has_no_statements() -> None:
    assert parse_statements(" -- nothing\n /* here */ ") == []


def test_source_name_location_points_at_the_name() -> None:
    (_, parsed) = parse_statements("SHOW STREAMS;\nINSERT INTO unknown SELECT * FROM s;")

    assert isinstance(parsed.statement, ast.InsertInto)
    assert parsed.statement.location == ast.Location(2, 13)


def test_variable_names_must_be_plain_identifiers() -> None:
    with pytest.raises(ParseError):
        parse_statements("DEFINE `v` = 'x';")
