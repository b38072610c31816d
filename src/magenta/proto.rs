//! The protocol buffer messages of a `.mag` bundle and of TensorFlow's
//! checkpoints, as prost messages: only the fields an import reads (prost
//! skips the others). Field numbers are those of magenta's
//! `generator.proto` and TensorFlow's `saved_tensor_slice.proto`,
//! `tensor_bundle.proto`, `tensor.proto`, `tensor_shape.proto`,
//! `tensor_slice.proto` and `versions.proto`.

/// TensorFlow's `DT_FLOAT`.
pub const DT_FLOAT: i32 = 1;

/// magenta `GeneratorBundle`: what a `.mag` file holds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GeneratorBundle {
    #[prost(message, optional, tag = "1")]
    pub generator_details: Option<GeneratorDetails>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub checkpoint_file: Vec<Vec<u8>>,
    #[prost(bytes = "vec", tag = "3")]
    pub metagraph_file: Vec<u8>,
    #[prost(message, optional, tag = "4")]
    pub bundle_details: Option<BundleDetails>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GeneratorDetails {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub description: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleDetails {
    #[prost(string, tag = "1")]
    pub description: String,
}

/// Every value of a V1 checkpoint table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedTensorSlices {
    #[prost(message, optional, tag = "1")]
    pub meta: Option<SavedTensorSliceMeta>,
    #[prost(message, optional, tag = "2")]
    pub data: Option<SavedSlice>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedTensorSliceMeta {
    #[prost(message, repeated, tag = "1")]
    pub tensor: Vec<SavedSliceMeta>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedSliceMeta {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
    #[prost(int32, tag = "3")]
    pub r#type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedSlice {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub slice: Option<TensorSliceProto>,
    #[prost(message, optional, tag = "3")]
    pub data: Option<TensorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorSliceProto {
    #[prost(message, repeated, tag = "1")]
    pub extent: Vec<Extent>,
}

/// One dimension of a slice: a missing length means the whole dimension.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Extent {
    #[prost(int64, tag = "1")]
    pub start: i64,
    #[prost(int64, optional, tag = "2")]
    pub length: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
}

/// The first entry (key "") of a V2 checkpoint's index.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleHeaderProto {
    #[prost(int32, tag = "1")]
    pub num_shards: i32,
    /// 0 little-endian, 1 big-endian.
    #[prost(int32, tag = "2")]
    pub endianness: i32,
}

/// A tensor's place in a V2 checkpoint's data files.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleEntryProto {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
    #[prost(int32, tag = "3")]
    pub shard_id: i32,
    #[prost(int64, tag = "4")]
    pub offset: i64,
    #[prost(int64, tag = "5")]
    pub size: i64,
    #[prost(fixed32, tag = "6")]
    pub crc32c: u32,
    #[prost(message, repeated, tag = "7")]
    pub slices: Vec<TensorSliceProto>,
}
