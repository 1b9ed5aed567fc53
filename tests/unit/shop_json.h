/* shop_json.h — a copy of examples/shop.json (the shop schema of README.md, "Schema")
 * for the unit tests, which run from the build directory.  test_schema checks
 * that it still parses to the same models as the file itself. */
#ifndef TALLY_TEST_SHOP_JSON_H
#define TALLY_TEST_SHOP_JSON_H

static const char SHOP_JSON[] =
    "{\n"
    "  \"models\": {\n"
    "    \"customer\": { \"fields\": {\n"
    "      \"name\":       { \"type\": \"string\", \"required\": true },\n"
    "      \"email\":      { \"type\": \"string\", \"unique\": true },\n"
    "      \"orderCount\": { \"type\": \"integer\", \"default\": 0 } } },\n"
    "    \"product\": { \"fields\": {\n"
    "      \"sku\":   { \"type\": \"string\", \"required\": true, \"unique\": true },\n"
    "      \"stock\": { \"type\": \"integer\", \"default\": 0, \"min\": 0 } } },\n"
    "    \"event\": { \"fields\": {\n"
    "      \"soldTicketCount\":      { \"type\": \"integer\", \"default\": 0 },\n"
    "      \"availableTicketCount\": { \"type\": \"integer\", \"default\": 0, \"min\": 0 } } },\n"
    "    \"ticket\": { \"fields\": { \"event\": { \"type\": \"belongsTo\", \"model\": \"event\", \"required\": true } } },\n"
    "    \"post\":   { \"fields\": {\n"
    "      \"title\":  { \"type\": \"string\", \"required\": true },\n"
    "      \"images\": { \"type\": \"hasMany\", \"model\": \"image\", \"inverse\": \"post\" } } },\n"
    "    \"image\":  { \"fields\": {\n"
    "      \"url\":  { \"type\": \"string\", \"required\": true, \"maxLength\": 2048 },\n"
    "      \"post\": { \"type\": \"belongsTo\", \"model\": \"post\" } } },\n"
    "    \"course\": { \"fields\": {\n"
    "      \"name\": { \"type\": \"string\" },\n"
    "      \"maxStudents\": { \"type\": \"integer\", \"default\": 30 },\n"
    "      \"slotsTaken\":  { \"type\": \"integer\", \"default\": 0, \"min\": 0 } } },\n"
    "    \"rateLimit\": {\n"
    "      \"fields\": {\n"
    "        \"userId\":   { \"type\": \"string\", \"required\": true },\n"
    "        \"window\":   { \"type\": \"integer\", \"required\": true },\n"
    "        \"requests\": { \"type\": \"integer\", \"default\": 0 } },\n"
    "      \"unique\": [[\"userId\", \"window\"]] }\n"
    "  },\n"
    "  \"limits\": {\n"
    "    \"login\": { \"rate\": 10, \"periodMs\": 60000, \"burst\": 5 } }\n"
    "}\n"
    ;

#endif
