//! quanyu connector for douyin (being written).
