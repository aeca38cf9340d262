//! Proto files with every construct the `.proto` writer covers, shared by the tests.

/// proto3: services with every streaming shape, maps, oneofs, optional, reserved, nested
/// types, aliases, imports (public and well-known), comments.
pub(crate) const RICH3: &str = r#"// File comment, detached.

// Leading comment of syntax.
syntax = "proto3";

package rich.v1;

import "google/protobuf/timestamp.proto";
import public "rich/v1/other.proto";

option go_package = "example.com/rich/v1;richv1";
option java_multiple_files = true;

// A service.
service Things {
  option deprecated = true;
  // Unary.
  rpc Get(Request) returns (Thing);
  rpc Watch(Request) returns (stream Thing); // trailing
  rpc Upload(stream Thing) returns (Request) {
    option idempotency_level = IDEMPOTENT;
  }
  rpc Chat(stream Request) returns (stream Thing);
}

// A request.
message Request {
  string id = 1 [json_name = "ident"];
  optional int32 limit = 2;
  repeated int64 values = 3 [packed = false];
  map<string, Thing> by_name = 4;
  oneof choice {
    string text = 5;
    bytes data = 6 [deprecated = true];
  }
  google.protobuf.Timestamp at = 7;
  Other other = 8;
  repeated Thing.Part parts = 10;
  reserved 9, 12 to 14, 100 to max;
  reserved "old", "older";
}

message Thing {
  option deprecated = true;

  // Nested.
  message Part {
    Kind kind = 1;
    Thing owner = 2;
  }

  enum Kind {
    option allow_alias = true;
    KIND_UNSPECIFIED = 0;
    KIND_A = 1;
    KIND_ALIAS = 1 [deprecated = true];
    reserved 5 to 7;
    reserved "KIND_GONE";
  }
  repeated Part parts = 1;
  Kind main_kind = 2;
  jstype_holder holder = 3;
}

message jstype_holder {
  int64 big = 1 [jstype = JS_STRING];
}
"#;

/// Imported publicly by [`RICH3`].
pub(crate) const OTHER: &str =
    "syntax = \"proto3\";\n\npackage rich.v1;\n\nmessage Other {\n  string name = 1;\n}\n";

/// proto2: required, defaults, packed, extension ranges and extensions.
pub(crate) const RICH2: &str = r#"syntax = "proto2";

package legacy;

message Old {
  required string id = 1;
  optional int32 count = 2 [default = 7];
  optional string label = 3 [default = "a \"quoted\" label"];
  optional Mode mode = 4 [default = MODE_B];
  repeated double ratios = 5 [packed = true];
  extensions 100 to 199;
}

enum Mode {
  MODE_A = 1;
  MODE_B = 2;
}

extend Old {
  optional string note = 100;
}
"#;
