//! quanyu connector for pdd (being written).
